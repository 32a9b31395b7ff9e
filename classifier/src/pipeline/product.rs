//! The product check's two steps: before the batch, what a photo claimed as a SKU is compared
//! with (the SKU's catalogue embedding when cached, else its catalogue photo made ready); in
//! the batch, the embeddings and their cosine similarity, judged at the package's threshold.

use std::sync::Arc;

use autorma_core::ProductCheck;

use super::decode::preprocess_blocking;
use super::messages::{CatalogueInput, Prepared, ProductInput};
use crate::catalogue::Catalogue;
use crate::inference::{cosine, product_check};
use crate::serving::ServingModel;

/// What the product check compares a photo claimed as `sku` with, or why it cannot (the photo
/// is still classified, its claim unchecked); `None` without a SKU.
pub(crate) async fn product_input(
    model: &Arc<ServingModel>,
    catalogue: Option<&Catalogue>,
    sku: Option<&str>,
    max_bytes: u64,
) -> Option<ProductInput> {
    let sku = sku?;
    let unavailable = |why: String| {
        tracing::debug!(sku, reason = %why, "product not checked");
        Some(ProductInput::Unavailable(why))
    };
    if model.product_threshold().is_none() {
        let m = &model.model;
        return unavailable(format!("model {} v{} has no embedding graph for the product check", m.name, m.version));
    }
    let Some(catalogue) = catalogue else {
        return unavailable("no catalogue of product photos is configured".into());
    };
    let compare = |catalogue| Some(ProductInput::Compare { sku: sku.to_string(), catalogue });
    if let Some(embedding) = model.catalogue_embeddings.get(sku) {
        return compare(CatalogueInput::Embedded(embedding));
    }
    match catalogue.photo(sku, max_bytes).await {
        Ok(None) => unavailable(format!("no catalogue photo for SKU `{sku}` in {}", catalogue.describe())),
        Err(e) => {
            tracing::warn!(sku, error = %e, "cannot read a catalogue photo");
            unavailable(format!("cannot read the catalogue photo of SKU `{sku}`: {e}"))
        }
        Ok(Some(object)) => match preprocess_blocking(model, object.bytes).await.0 {
            Ok(tensor) => compare(CatalogueInput::Tensor(tensor)),
            Err(e) => unavailable(format!("the catalogue photo of SKU `{sku}` cannot be used: {e}")),
        },
    }
}

/// The product check of each photo of a batch whose claim names a SKU: the photos and the
/// catalogue photos not embedded yet go through the embedding graph together (one run), the
/// new catalogue embeddings are cached, and each photo is judged by its cosine similarity.
pub(crate) fn product_checks(worker: usize, items: &[Prepared]) -> Vec<Option<ProductCheck>> {
    let mut checks: Vec<Option<ProductCheck>> = items
        .iter()
        .map(|item| match &item.product {
            Some(ProductInput::Unavailable(why)) => Some(ProductCheck::unchecked(why.clone())),
            _ => None,
        })
        .collect();
    let compared: Vec<usize> =
        (0..items.len()).filter(|&i| matches!(items[i].product, Some(ProductInput::Compare { .. }))).collect();
    if compared.is_empty() {
        return checks;
    }
    // The batcher never mixes models, so the first photo's model is the batch's.
    let model = &items[0].model;
    let (Some(mut embedder), Some(threshold)) = (model.embedder(worker), model.product_threshold()) else {
        unreachable!("the fetch stage compares only with a model that has an embedding graph")
    };
    let mut input = Vec::new();
    for &i in &compared {
        input.extend_from_slice(&items[i].tensor);
    }
    for &i in &compared {
        if let Some(ProductInput::Compare { catalogue: CatalogueInput::Tensor(tensor), .. }) = &items[i].product {
            input.extend_from_slice(tensor);
        }
    }
    let rows = match embedder.embed(&input) {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(error = %e, "the product check's embedding failed; those photos are not compared");
            for &i in &compared {
                checks[i] = Some(ProductCheck::unchecked(format!("the embedding failed: {e}")));
            }
            return checks;
        }
    };
    let (photos, mut catalogue) = (&rows[..compared.len()], rows[compared.len()..].iter());
    for (row, &i) in photos.iter().zip(&compared) {
        let Some(ProductInput::Compare { sku, catalogue: reference }) = &items[i].product else {
            unreachable!("only compared photos are listed")
        };
        let reference = match reference {
            CatalogueInput::Embedded(embedding) => embedding.clone(),
            CatalogueInput::Tensor(_) => {
                let embedding: Arc<[f32]> = catalogue.next().expect("one row per catalogue tensor").as_slice().into();
                model.catalogue_embeddings.insert(sku, embedding.clone());
                embedding
            }
        };
        checks[i] = Some(product_check(cosine(row, &reference), threshold));
    }
    checks
}
