//! One CSV of results, written the same way by the embedded run (`results.csv`) and the API
//! (`GET /v1/results.csv`):
//! `key,etag,label,confidence,decision,p_<class>...,model,model_version,execution_provider,processed_at`.

use std::collections::BTreeSet;

use autorma_core::ResultRecord;

pub fn results_csv<'a>(records: impl IntoIterator<Item = &'a ResultRecord> + Clone) -> Vec<u8> {
    let classes: BTreeSet<&str> =
        records.clone().into_iter().flat_map(|r| r.probabilities.keys().map(String::as_str)).collect();
    let mut writer = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["key".to_string(), "etag".into(), "label".into(), "confidence".into(), "decision".into()];
    header.extend(classes.iter().map(|c| format!("p_{c}")));
    header.extend(["model".into(), "model_version".into(), "execution_provider".into(), "processed_at".into()]);
    writer.write_record(&header).expect("writing to a Vec cannot fail");
    for r in records {
        let mut row = vec![
            r.item.key.clone(),
            r.item.etag.clone(),
            r.label.clone(),
            format!("{:.6}", r.confidence),
            r.decision.as_str().into(),
        ];
        row.extend(classes.iter().map(|c| r.probabilities.get(*c).map(|p| format!("{p:.6}")).unwrap_or_default()));
        row.extend([
            r.model.name.clone(),
            r.model.version.clone(),
            r.execution_provider.clone(),
            r.processed_at.to_rfc3339(),
        ]);
        writer.write_record(&row).expect("writing to a Vec cannot fail");
    }
    writer.into_inner().expect("flushing a Vec cannot fail")
}
