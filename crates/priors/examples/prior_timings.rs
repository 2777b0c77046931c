//! Times the embedded priors in one run: BRISQUE on a 1024×1024 image and graph segmentation on
//! a 1024×768 one, both resized from a photo (scikit-image's astronaut by default when run from
//! the workspace with the venv, or any image given as the first argument).
//!
//! `cargo run --release -p clearair-priors --example prior_timings -- [IMAGE] [RUNS]`
//! (BRISQUE parameters from `CLEARAIR_BRISQUE_PARAMS` or `data/brisque/brisque_svr.json`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clearair_priors::{BrisqueModel, GraphSegmenter, GraphSegmenterConfig, MAX_REGION_MASKS};
use image::imageops::FilterType;

const DEFAULT_PHOTO: &str = ".venv/lib/python3.11/site-packages/skimage/data/astronaut.png";

fn median_time(runs: usize, mut task: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            task();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let photo = args
        .next()
        .map_or_else(|| PathBuf::from(DEFAULT_PHOTO), PathBuf::from);
    let runs: usize = args.next().map_or(Ok(15), |runs| runs.parse())?;
    let params = std::env::var_os("CLEARAIR_BRISQUE_PARAMS").map_or_else(
        || PathBuf::from("data/brisque/brisque_svr.json"),
        PathBuf::from,
    );
    let source = image::open(&photo).map_err(|e| format!("{}: {e}", photo.display()))?;

    let model = BrisqueModel::load(&params)?;
    let square = source
        .resize_exact(1024, 1024, FilterType::Triangle)
        .to_rgb8();
    let assessment = model.assess(1024, 1024, square.as_raw())?;
    let brisque = median_time(runs, || {
        model.assess(1024, 1024, square.as_raw()).expect("assess");
    });
    println!(
        "BRISQUE 1024x1024: median {:.1} ms over {runs} runs (raw score {:.2}, level {})",
        brisque.as_secs_f64() * 1e3,
        assessment.raw_score,
        assessment.level
    );

    let segmenter = GraphSegmenter::new(GraphSegmenterConfig::default());
    let landscape = source
        .resize_exact(1024, 768, FilterType::Triangle)
        .to_rgb8();
    let masks = segmenter.segment(1024, 768, landscape.as_raw(), MAX_REGION_MASKS)?;
    let segmentation = median_time(runs, || {
        segmenter
            .segment(1024, 768, landscape.as_raw(), MAX_REGION_MASKS)
            .expect("segment");
    });
    println!(
        "graph segmentation 1024x768: median {:.1} ms over {runs} runs ({} masks)",
        segmentation.as_secs_f64() * 1e3,
        masks.count
    );
    Ok(())
}
