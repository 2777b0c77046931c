//! `clearair-segmentation`: the segmentation service as its own process.

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    clearair_runtime::launch::run(clearair_runtime::launch::launch(
        "clearair-segmentation",
        "CLEARAIR_SEGMENTATION",
        clearair_segmentation::serve,
    ))
}
