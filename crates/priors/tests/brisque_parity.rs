//! Parity of [`BrisqueModel`] with the `brisque` PyPI package on the committed fixtures.
//!
//! `tests/fixtures/brisque/reference.json` holds the package's features and scores for the
//! fixture PNGs beside it (written by `deploy/scripts/brisque_reference.py`, verified in CI with its
//! `--check`). The SVR parameters are not committed: `make setup` exports them from the
//! installed package to `data/brisque/brisque_svr.json`, or `CLEARAIR_BRISQUE_PARAMS` names
//! another file (relative paths are taken from the workspace root).
//!
//! Two comparisons per fixture: tight, against the package with its MSCN rounding noise set to
//! exactly 0 (the one rule the port adds, see `brisque/mscn.rs`; identical to the plain package
//! on fixtures without exactly flat windows), and loose, against the plain package.

use std::path::{Path, PathBuf};

use clearair_priors::{BRISQUE_FEATURES, BrisqueModel, QualityLevel, brisque_quality_score};
use serde::Deserialize;

/// Largest relative difference allowed per raw feature (plus [`FEATURE_ABS_TOLERANCE`]); the
/// features are returned as f32, whose rounding alone is 6e-8.
const FEATURE_REL_TOLERANCE: f64 = 1e-6;
/// Absolute slack for features near zero (the AGGD means).
const FEATURE_ABS_TOLERANCE: f64 = 1e-7;
/// Largest difference allowed on the scaled features `F_q` (f32, values about ±1).
const SCALED_TOLERANCE: f64 = 1e-6;
/// Largest difference allowed on BRISQUE's 0..100 raw score against the rounding-free package.
const SCORE_TOLERANCE: f64 = 1e-4;
/// Largest difference allowed against the plain package, rounding noise included.
const PACKAGE_SCORE_TOLERANCE: f64 = 0.5;

#[derive(Deserialize)]
struct Reference {
    fixtures: Vec<Fixture>,
}

#[derive(Deserialize)]
struct Fixture {
    file: String,
    width: usize,
    height: usize,
    mscn_rounding_noise: usize,
    score: f64,
    exact_features: Vec<f64>,
    exact_scaled_features: Vec<f64>,
    exact_score: f64,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn params_path() -> PathBuf {
    match std::env::var_os("CLEARAIR_BRISQUE_PARAMS") {
        Some(path) => workspace_root().join(path),
        None => workspace_root().join("data/brisque/brisque_svr.json"),
    }
}

fn load_model() -> BrisqueModel {
    let path = params_path();
    assert!(
        path.is_file(),
        "BRISQUE parameters not found at {} — run `make setup` (it runs \
         deploy/scripts/brisque_params.py) or point CLEARAIR_BRISQUE_PARAMS at the file",
        path.display()
    );
    BrisqueModel::load(&path).unwrap_or_else(|error| panic!("{error}"))
}

fn fixtures_dir() -> PathBuf {
    workspace_root().join("tests/fixtures/brisque")
}

fn load_reference() -> Reference {
    let path = fixtures_dir().join("reference.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn load_rgb(fixture: &Fixture) -> Vec<u8> {
    let path = fixtures_dir().join(&fixture.file);
    let image = image::open(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_rgb8();
    assert_eq!(
        (image.width() as usize, image.height() as usize),
        (fixture.width, fixture.height)
    );
    image.into_raw()
}

fn relative_gap(got: f64, want: f64) -> f64 {
    (got - want).abs() / want.abs().max(FEATURE_ABS_TOLERANCE)
}

#[test]
fn features_and_scores_match_the_python_package() {
    let model = load_model();
    let reference = load_reference();
    assert!(
        reference.fixtures.len() >= 4,
        "expected the committed fixture set"
    );
    assert!(
        reference.fixtures.iter().any(|f| f.mscn_rounding_noise > 0),
        "the fixture set should include an image with exactly flat windows"
    );
    let (mut worst_feature, mut worst_score, mut worst_package_score) = (0.0f64, 0.0f64, 0.0f64);
    for fixture in &reference.fixtures {
        let rgb = load_rgb(fixture);
        let features = model.features(fixture.width, fixture.height, &rgb).unwrap();
        let assessment = model.assess(fixture.width, fixture.height, &rgb).unwrap();
        assert_eq!(fixture.exact_features.len(), BRISQUE_FEATURES);

        for (index, (&got, &want)) in features.iter().zip(&fixture.exact_features).enumerate() {
            let got = f64::from(got);
            worst_feature = worst_feature.max(relative_gap(got, want));
            assert!(
                (got - want).abs() <= FEATURE_ABS_TOLERANCE + FEATURE_REL_TOLERANCE * want.abs(),
                "{}: raw feature {index} = {got}, package {want}",
                fixture.file
            );
        }
        assert_eq!(assessment.features.len(), BRISQUE_FEATURES);
        for (index, (&got, &want)) in assessment
            .features
            .iter()
            .zip(&fixture.exact_scaled_features)
            .enumerate()
        {
            assert!(
                (f64::from(got) - want).abs() <= SCALED_TOLERANCE,
                "{}: scaled feature {index} = {got}, package {want}",
                fixture.file
            );
        }
        let raw_score = f64::from(assessment.raw_score);
        worst_score = worst_score.max((raw_score - fixture.exact_score).abs());
        worst_package_score = worst_package_score.max((raw_score - fixture.score).abs());
        assert!(
            (raw_score - fixture.exact_score).abs() <= SCORE_TOLERANCE,
            "{}: score {raw_score} vs rounding-free package {}",
            fixture.file,
            fixture.exact_score
        );
        assert!(
            (raw_score - fixture.score).abs() <= PACKAGE_SCORE_TOLERANCE,
            "{}: score {raw_score} vs package {}",
            fixture.file,
            fixture.score
        );
        if fixture.mscn_rounding_noise == 0 {
            assert_eq!(
                fixture.score, fixture.exact_score,
                "{}: noise-free fixture",
                fixture.file
            );
        }
        assert_eq!(
            assessment.score,
            brisque_quality_score(assessment.raw_score)
        );
        assert_eq!(assessment.level, QualityLevel::from_score(assessment.score));
    }
    println!(
        "worst relative feature gap {worst_feature:.1e}, worst score gap {worst_score:.1e} \
         (rounding-free package), {worst_package_score:.2} (plain package)"
    );
}

#[test]
fn degraded_fixtures_score_worse_than_the_clean_one() {
    let model = load_model();
    let reference = load_reference();
    let score_of = |name: &str| {
        let fixture = reference
            .fixtures
            .iter()
            .find(|f| f.file == name)
            .expect(name);
        model
            .assess(fixture.width, fixture.height, &load_rgb(fixture))
            .unwrap()
    };
    let clean = score_of("astronaut_clean.png");
    assert_eq!(clean.level, QualityLevel::Excellent);
    for degraded in [
        "coffee_noise25.png",
        "chelsea_blur2.png",
        "rocket_jpeg10.png",
    ] {
        let assessment = score_of(degraded);
        assert!(
            assessment.score < clean.score - 1.0,
            "{degraded}: {assessment:?}"
        );
        assert!(
            assessment.level <= QualityLevel::Fair,
            "{degraded}: {:?}",
            assessment.level
        );
    }
}
