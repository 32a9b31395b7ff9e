//! One CSV of results, written the same way by the embedded run (`results.csv`) and the API
//! (`GET /v1/results.csv`):
//! `key,etag,label,confidence,decision,p_<class>...,model,model_version,execution_provider,processed_at,`
//! `review_reason,expected_label,check,sku,rma_id,product_check,similarity` (from the photo's
//! claim, empty without one: `check` is the category check's outcome, `product_check` and
//! `similarity` the product check's; new columns go at the end, so a reader by position keeps
//! working).
//! Warehouse staff open it in a spreadsheet, and a key is whatever name a photo was uploaded
//! under: a cell that would start a formula is neutralised (OWASP, "CSV injection").

use std::collections::BTreeSet;

use autorma_core::{CheckOutcome, ClaimCheck, ResultRecord, ReviewReason};

pub fn results_csv<'a>(records: impl IntoIterator<Item = &'a ResultRecord> + Clone) -> Vec<u8> {
    let classes: BTreeSet<&str> =
        records.clone().into_iter().flat_map(|r| r.probabilities.keys().map(String::as_str)).collect();
    let mut writer = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["key".to_string(), "etag".into(), "label".into(), "confidence".into(), "decision".into()];
    header.extend(classes.iter().map(|c| format!("p_{c}")));
    const AFTER_CLASSES: [&str; 11] = [
        "model",
        "model_version",
        "execution_provider",
        "processed_at",
        "review_reason",
        "expected_label",
        "check",
        "sku",
        "rma_id",
        "product_check",
        "similarity",
    ];
    header.extend(AFTER_CLASSES.map(String::from));
    writer.write_record(header.iter().map(|cell| neutralised(cell))).expect("writing to a Vec cannot fail");
    for r in records {
        let mut row = vec![
            r.item.key.clone(),
            r.item.etag.clone(),
            r.label.clone(),
            format!("{:.6}", r.confidence),
            r.decision.as_str().into(),
        ];
        row.extend(classes.iter().map(|c| r.probabilities.get(*c).map(|p| format!("{p:.6}")).unwrap_or_default()));
        let claim = r.claim.as_ref();
        let field = |f: fn(&ClaimCheck) -> Option<&str>| claim.and_then(f).unwrap_or_default().to_string();
        row.extend([
            r.model.name.clone(),
            r.model.version.clone(),
            r.execution_provider.clone(),
            r.processed_at.to_rfc3339(),
            r.review_reason.map(ReviewReason::as_str).unwrap_or_default().into(),
            field(|c| c.claim.expected_label.as_deref()),
            field(|c| c.category.map(CheckOutcome::as_str)),
            field(|c| c.claim.sku.as_deref()),
            field(|c| c.claim.rma_id.as_deref()),
            field(|c| c.product.as_ref().map(|p| p.outcome.as_str())),
            claim.and_then(|c| c.product.as_ref()?.similarity).map(|s| format!("{s:.4}")).unwrap_or_default(),
        ]);
        writer.write_record(row.iter().map(|cell| neutralised(cell))).expect("writing to a Vec cannot fail");
    }
    writer.into_inner().expect("flushing a Vec cannot fail")
}

/// A cell a spreadsheet would read as a formula (it starts with `=`, `+`, `-`, `@`, a tab or a
/// carriage return) gets a leading `'`, which the spreadsheet shows as text; a plain number
/// (a negative similarity) is no formula and stays a number.
pub fn neutralised(cell: &str) -> String {
    let formula = cell.starts_with(['=', '+', '-', '@', '\t', '\r']) && cell.parse::<f64>().is_err();
    if formula { format!("'{cell}") } else { cell.to_string() }
}

#[cfg(test)]
mod tests {
    use autorma_core::Decision;

    use super::*;
    use crate::test_records::result;

    #[test]
    fn a_cell_that_would_start_a_formula_is_text() {
        let keys =
            ["=HYPERLINK(\"http://x\",\"y\")", "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx", "inbox/a=b.jpg", "-0.25"];
        let records: Vec<_> = keys.iter().map(|k| result(k, "e", Decision::Auto)).collect();
        let csv = String::from_utf8(results_csv(&records)).unwrap();
        let mut reader = csv::Reader::from_reader(csv.as_bytes());
        let cells: Vec<String> = reader.records().map(|r| r.unwrap()[0].to_string()).collect();
        assert_eq!(
            cells,
            [
                "'=HYPERLINK(\"http://x\",\"y\")",
                "'+1+1",
                "'-2+3",
                "'@SUM(A1)",
                "'\tx",
                "'\rx",
                "inbox/a=b.jpg",
                "-0.25"
            ]
        );
        assert!(
            !csv.lines().skip(1).filter(|l| !l.starts_with("-0.25,")).any(|l| l.starts_with(['=', '+', '-', '@'])),
            "{csv}"
        );
    }

    #[test]
    fn the_claim_and_the_review_reason_are_the_last_columns() {
        let mut claimed = result("a.jpg", "e", Decision::Review);
        claimed.review_reason = Some(ReviewReason::WrongItem);
        claimed.claim = Some(ClaimCheck {
            claim: autorma_core::Claim { expected_label: Some("tops".into()), sku: Some("1163".into()), rma_id: None },
            category: Some(CheckOutcome::Mismatch),
            product: Some(autorma_core::ProductCheck {
                outcome: CheckOutcome::Mismatch,
                similarity: Some(-0.125),
                detail: None,
            }),
        });
        let plain = result("b.jpg", "e", Decision::Auto);
        let csv = String::from_utf8(results_csv(&[claimed, plain])).unwrap();
        let mut reader = csv::Reader::from_reader(csv.as_bytes());
        let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
        assert_eq!(
            header[header.len() - 7..],
            ["review_reason", "expected_label", "check", "sku", "rma_id", "product_check", "similarity"]
        );
        let rows: Vec<Vec<String>> =
            reader.records().map(|r| r.unwrap().iter().rev().take(7).map(String::from).collect()).collect();
        assert_eq!(rows[0], ["-0.1250", "mismatch", "", "1163", "mismatch", "tops", "wrong_item"]);
        assert_eq!(rows[1], ["", "", "", "", "", "", ""]);
    }
}
