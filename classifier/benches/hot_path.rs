//! `cargo bench -p autorma-classifier`: the CPU stages around the model.
//! - preprocess: decode + letterbox + resize + normalise of a typical catalogue photo
//!   (1080 x 1440 JPEG) and of a small one (60 x 80, like many in fashion5), then each of its
//!   steps alone on the large photo: decode, letterbox + resize, normalise;
//! - batcher: the cost of micro-batching itself (items through a full-size batcher).

use std::sync::Arc;
use std::time::Duration;

use autorma_classifier::pipeline::batcher::{BatcherConfig, Upstream, run_batcher};
use autorma_classifier::preprocess::{DecodeLimits, Preprocessor, decode_rgb, letterbox_resize, normalise_into};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use image::{ImageEncoder, Rgb, RgbImage};

fn jpeg(w: u32, h: u32) -> Vec<u8> {
    let img = RgbImage::from_fn(w, h, |x, y| Rgb([(x % 256) as u8, (y % 256) as u8, ((x ^ y) % 256) as u8]));
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
        .write_image(&img, w, h, image::ExtendedColorType::Rgb8)
        .unwrap();
    out
}

fn preprocess(c: &mut Criterion) {
    let pre = Preprocessor {
        size: 128,
        background: [255; 3],
        scale: 1.0 / 255.0,
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
        limits: DecodeLimits::default(),
    };
    let mut group = c.benchmark_group("preprocess");
    group.throughput(Throughput::Elements(1));
    for (name, (w, h)) in [("jpeg_1080x1440", (1080, 1440)), ("jpeg_60x80", (60, 80))] {
        let bytes = jpeg(w, h);
        group.bench_function(name, |b| b.iter(|| pre.preprocess(std::hint::black_box(&bytes)).unwrap()));
    }
    // A phone-size photo: decoded at the DCT scale the model's size allows (1/8 here), against
    // every pixel, and letterboxed from each.
    let bytes = jpeg(1080, 1440);
    group.bench_function("decode_jpeg_1080x1440_scaled", |b| {
        b.iter(|| decode_rgb(std::hint::black_box(&bytes), &pre.limits, pre.background, pre.size).unwrap())
    });
    group.bench_function("decode_jpeg_1080x1440_every_pixel", |b| {
        b.iter(|| decode_rgb(std::hint::black_box(&bytes), &pre.limits, pre.background, u32::MAX).unwrap())
    });
    let every_pixel = decode_rgb(&bytes, &pre.limits, pre.background, u32::MAX).unwrap();
    group.bench_function("letterbox_resize_1080x1440_to_128", |b| {
        b.iter(|| letterbox_resize(std::hint::black_box(&every_pixel), pre.size, pre.background))
    });
    let rgb = decode_rgb(&bytes, &pre.limits, pre.background, pre.size).unwrap();
    group.bench_function("letterbox_resize_135x180_to_128", |b| {
        b.iter(|| letterbox_resize(std::hint::black_box(&rgb), pre.size, pre.background))
    });
    let square = letterbox_resize(&rgb, pre.size, pre.background);
    let mut out = vec![0.0; pre.tensor_len()];
    group.bench_function("normalise_128", |b| {
        b.iter(|| normalise_into(std::hint::black_box(&square), pre.scale, pre.mean, pre.std, &mut out))
    });
    group.finish();
}

fn batcher(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let mut group = c.benchmark_group("batcher");
    const N: u64 = 10_000;
    group.throughput(Throughput::Elements(N));
    group.bench_function("10k_items_batch_32", |b| {
        b.to_async(&runtime).iter(|| async {
            let (in_tx, in_rx) = tokio::sync::mpsc::channel(64);
            let (out_tx, mut out_rx) = tokio::sync::mpsc::channel(4);
            let config =
                BatcherConfig { max_batch_size: 32, max_wait: Duration::from_millis(20), ..Default::default() };
            // The feeder is the stage before: a photo is on its way until the last is sent.
            let upstream = Arc::new(Upstream::default());
            let on_its_way = upstream.start();
            let batcher = tokio::spawn(run_batcher(config, in_rx, out_tx, upstream, |_, _| true));
            let feeder = tokio::spawn(async move {
                for i in 0..N {
                    in_tx.send(i).await.unwrap();
                }
                drop(on_its_way);
            });
            let mut seen = 0;
            while let Some(batch) = out_rx.recv().await {
                seen += batch.items.len() as u64;
            }
            feeder.await.unwrap();
            batcher.await.unwrap();
            assert_eq!(seen, N);
        })
    });
    group.finish();
}

criterion_group!(benches, preprocess, batcher);
criterion_main!(benches);
