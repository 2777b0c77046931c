//! `clearair-quality`: the quality service as its own process.

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    clearair_runtime::launch::run(clearair_runtime::launch::launch(
        "clearair-quality",
        "CLEARAIR_QUALITY",
        clearair_quality::serve,
    ))
}
