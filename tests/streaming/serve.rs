//! `autorma serve --streaming` on the real engines: its index follows the topics the worker
//! publishes to, uploads go to the bucket and come back as results, a correction reaches the
//! bucket and `rma.corrections`, `/v1/classify` answers with the registry version the worker
//! serves, and the index rebuilt from the topics, from the bucket, or resumed after a restart
//! answers exactly as before.

use std::time::Duration;

use super::clients::TopicReader;
use super::http::{Http, MULTIPART, multipart, read_json};
use super::stack::wait_until;
use super::{serial, stack_with_workers, test_photos};

const TOKEN: &str = "t0ken";

fn get(http: &Http, path: &str) -> serde_json::Value {
    let (status, body) = http.json(path, TOKEN);
    assert_eq!(status, 200, "{path}: {body}");
    body
}

#[test]
fn serve_follows_the_topics_takes_uploads_and_corrections_and_rebuilds_the_same_answers() {
    let _serial = serial();
    // 25 photos, 5 of each class: 10 uploaded through the API, 15 PUT into the bucket.
    let photos: Vec<(String, Vec<u8>)> =
        test_photos().into_iter().step_by(15).map(|(key, path)| (key, std::fs::read(path).unwrap())).collect();
    assert_eq!(photos.len(), 25);
    let (mut stack, _results, s3) = stack_with_workers(&["worker-a"]);
    let corrections = TopicReader::start(&stack.brokers, "rma.corrections");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let index = stack.dir.path().join("serve-index.sqlite").display().to_string();
    let listen = format!("127.0.0.1:{port}");
    let serve = |extra: &[&str]| -> Vec<String> {
        let mut args = vec!["serve", "--streaming", "--listen", &listen, "--token", TOKEN, "--index", &index];
        args.extend_from_slice(extra);
        args.into_iter().map(String::from).collect()
    };
    let spawn = |stack: &mut super::stack::Stack, name: &str, extra: &[&str]| {
        let args = serve(extra);
        stack.spawn(name, &args.iter().map(String::as_str).collect::<Vec<_>>());
    };
    let http = Http { port };
    let ready = |http: &Http| {
        wait_until("serve to be ready", Duration::from_secs(90), || http.get("/readyz", Some(TOKEN)).0 == 200)
    };
    spawn(&mut stack, "serve-1", &[]);
    ready(&http);
    let checks = get(&http, "/readyz")["checks"].clone();
    assert!(
        ["model", "corrections", "photos", "broker", "index"]
            .iter()
            .all(|c| checks[c].as_str().unwrap().starts_with("ok")),
        "{checks}"
    );

    let (mut events, mut seen) = http.subscribe(TOKEN, Duration::from_secs(90));
    let named: Vec<(String, &[u8])> = photos[..10]
        .iter()
        .map(|(key, bytes)| (key.rsplit('/').next().unwrap().to_string(), bytes.as_slice()))
        .collect();
    let parts: Vec<(&str, &[u8])> = named.iter().map(|(name, bytes)| (name.as_str(), *bytes)).collect();
    let (status, answer) = read_json(&mut http.open_bytes("POST", "/v1/uploads", MULTIPART, &multipart(&parts), TOKEN));
    assert_eq!(status, 200, "{answer}");
    let uploaded: Vec<String> =
        answer["uploads"].as_array().unwrap().iter().map(|u| u["key"].as_str().unwrap().to_string()).collect();
    assert!(uploaded.iter().all(|k| k.starts_with("inbox/uploads/")), "under the inbox prefix: {uploaded:?}");
    s3.put_all(photos[10..].to_vec());
    let mut keys: Vec<String> = uploaded.iter().cloned().chain(photos[10..].iter().map(|(k, _)| k.clone())).collect();
    keys.sort();

    // Every photo's result reaches the index, exactly as the worker wrote it to the bucket.
    wait_until("25 results in the index", Duration::from_secs(120), || {
        get(&http, "/v1/results?per_page=500")["total"] == 25
    });
    let page = get(&http, "/v1/results?per_page=500");
    let mut indexed: Vec<String> =
        page["items"].as_array().unwrap().iter().map(|r| r["item"]["key"].as_str().unwrap().to_string()).collect();
    indexed.sort();
    assert_eq!(indexed, keys);
    for key in &keys {
        assert_eq!(get(&http, &format!("/v1/results/{key}")), s3.get_json(&format!("results/{key}.json")), "{key}");
    }
    // ...and each upload's result was announced.
    Http::read_until(&mut events, &mut seen, |s| uploaded.iter().all(|k| s.contains(&format!("\"key\":\"{k}\""))));
    drop(events);

    // Classified in the request by the same model as the worker, and the photos served back.
    let (key, bytes) = (&photos[12].0, &photos[12].1);
    let (status, answer) = read_json(&mut http.open_bytes("POST", "/v1/classify", "image/jpeg", bytes, TOKEN));
    assert_eq!(status, 200, "{answer}");
    let worker = s3.get_json(&format!("results/{key}.json"));
    assert_eq!(answer["results"][0]["label"], worker["label"]);
    // The registry's production version, as the workers serve it.
    assert_eq!(answer["results"][0]["model_version"], worker["model"]["version"]);
    assert_eq!(get(&http, "/v1/model")["sha256"], worker["model"]["sha256"]);
    assert!(
        (answer["results"][0]["confidence"].as_f64().unwrap() - worker["confidence"].as_f64().unwrap()).abs() < 1e-5
    );
    assert_eq!(http.get_bytes(&format!("/v1/photos/{key}"), TOKEN), (200, bytes.clone()));

    // A person's label: in the bucket beside the result, on rma.corrections, in the index.
    let queue = get(&http, "/v1/review?per_page=500");
    let corrected = queue["items"][0]["item"]["key"].as_str().unwrap_or(&uploaded[0]).to_string();
    let model_label = get(&http, &format!("/v1/results/{corrected}"))["label"].as_str().unwrap().to_string();
    let label = if model_label == "watches" { "tops" } else { "watches" };
    let body = format!(r#"{{"label": "{label}", "by": "ann"}}"#);
    let (status, answer) = http.post_json(&format!("/v1/review/{corrected}"), Some(TOKEN), &body);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(s3.get_json(&format!("corrections/{corrected}.json"))["label"], label);
    wait_until("the correction on rma.corrections", Duration::from_secs(30), || {
        corrections.records().iter().any(|r| r.key == corrected && r.value["label"] == label)
    });
    assert_eq!(get(&http, &format!("/v1/results/{corrected}"))["correction"]["label"], label);
    assert_eq!(get(&http, "/v1/review?per_page=500")["total"], queue["total"].as_u64().unwrap_or(1).saturating_sub(1));

    // The index is derived: rebuilt from the topics, from the bucket, or resumed after a
    // restart, it answers the same.
    let answers = |http: &Http| {
        [
            get(http, "/v1/results?per_page=500"),
            get(http, "/v1/review?per_page=500"),
            get(http, "/v1/results?decision=auto&per_page=7&page=2"),
            get(http, &format!("/v1/results/{corrected}")),
        ]
    };
    let before = answers(&http);
    let mut previous = "serve-1".to_string();
    for (name, extra) in [("serve-2", &["--rebuild", "topics"][..]), ("serve-3", &["--rebuild", "bucket"][..])] {
        assert!(stack.signal(&previous, libc::SIGTERM).success(), "{previous} stops cleanly");
        spawn(&mut stack, name, extra);
        ready(&http);
        assert_eq!(answers(&http), before, "{name}: {extra:?}");
        assert!(stack.log(name).contains("rebuilding the results index"), "{name}");
        previous = name.to_string();
    }
    // Down while a photo is classified: resumed from its positions, it catches up.
    assert!(stack.signal(&previous, libc::SIGTERM).success());
    let (late_key, late) = ("inbox/late/late.jpg".to_string(), photos[0].1.clone());
    s3.put(&late_key, late);
    wait_until("the late photo's result", Duration::from_secs(60), || {
        !s3.list(&format!("results/{late_key}")).is_empty()
    });
    spawn(&mut stack, "serve-4", &[]);
    ready(&http);
    assert_eq!(get(&http, "/v1/results?per_page=500")["total"], 26);
    assert_eq!(get(&http, &format!("/v1/results/{late_key}")), s3.get_json(&format!("results/{late_key}.json")));
    let queue = get(&http, "/v1/review?per_page=500");
    let others: Vec<&serde_json::Value> =
        queue["items"].as_array().unwrap().iter().filter(|r| r["item"]["key"] != late_key.as_str()).collect();
    assert_eq!(
        others,
        before[1]["items"].as_array().unwrap().iter().collect::<Vec<_>>(),
        "the queue, the late photo aside"
    );
}
