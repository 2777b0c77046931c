//! `clearair-restoration`: the restoration service as its own process.

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    clearair_runtime::launch::run(clearair_runtime::launch::launch(
        "clearair-restoration",
        "CLEARAIR_RESTORATION",
        clearair_restoration::serve,
    ))
}
