//! `clearair-degradation`: the degradation service as its own process.

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    clearair_runtime::launch::run(clearair_runtime::launch::launch(
        "clearair-degradation",
        "CLEARAIR_DEGRADATION",
        clearair_degradation::serve,
    ))
}
