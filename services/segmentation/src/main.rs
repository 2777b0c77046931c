//! `clearair-segmentation`: the segmentation service as its own process.

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    clearair_runtime::launch::launch(
        "clearair-segmentation",
        "CLEARAIR_SEGMENTATION",
        clearair_segmentation::serve,
    )
    .await
}
