//! `clearair bench` end to end on a small image: every level answers without errors, the
//! ratios are what their medians say, and the report names what it measured.

use clearair_e2e::{photo, test_config};
use clearair_mesh::bench::{BenchOptions, render, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bench_measures_every_level_and_both_ratios() {
    let options = BenchOptions {
        image: photo(),
        requests: 3,
        concurrency: vec![1, 2],
        ratio_requests: 2,
    };
    let report = run(test_config(), &options).await.expect("the bench runs");

    assert_eq!(report.load.len(), 2);
    for level in &report.load {
        assert_eq!(level.errors, 0, "{level:?}");
        assert_eq!(level.requests, 3, "{level:?}");
        assert!(
            level.p50_ms > 0.0 && level.p50_ms <= level.p99_ms,
            "{level:?}"
        );
        assert!(level.throughput_rps > 0.0, "{level:?}");
        // The per-stage breakdown: the orchestrator's stages, ending with the total, each a
        // median no larger than the total's.
        let names: Vec<&str> = level.stages.iter().map(|s| s.stage.as_str()).collect();
        for stage in ["decode", "restoration", "encode", "total"] {
            assert!(names.contains(&stage), "{stage} in {names:?}");
        }
        let total = level.stages.last().expect("stages");
        assert_eq!(total.stage, "total");
        assert!(
            level.stages.iter().all(|s| s.ms >= 0.0 && s.ms <= total.ms),
            "{level:?}"
        );
    }
    for ratio in [
        report.orchestrator_overhead.as_ref().expect("measured"),
        report.parallel_over_sequential.as_ref().expect("measured"),
    ] {
        assert!(
            ratio.measured_ms > 0.0 && ratio.baseline_ms > 0.0,
            "{ratio:?}"
        );
        assert!((ratio.ratio - ratio.measured_ms / ratio.baseline_ms).abs() < 1e-9);
    }
    let alone = report.priors_alone.as_ref().expect("measured");
    for ms in [
        alone.quality_ms,
        alone.segmentation_ms,
        alone.degradation_ms,
    ] {
        assert!(ms > 0.0, "{alone:?}");
    }
    // The slowest of three over their sum lies in [1/3, 1].
    assert!((1.0 / 3.0..=1.0).contains(&alone.ideal_ratio), "{alone:?}");
    assert!(alone.cores >= 1);

    let table = render(&report);
    for expected in [
        "concurrency",
        "orchestrated / direct calls",
        "parallel / sequential prior fan-out",
        "prior services alone",
        "stages at concurrency 1",
        "throughput against concurrency 1",
    ] {
        assert!(
            table.contains(expected),
            "{expected} missing from:\n{table}"
        );
    }
    // The scaling line states the ratio of the two levels measured above.
    let ratio = report.load[1].throughput_rps / report.load[0].throughput_rps;
    assert!(
        table.contains(&format!("at concurrency 2 = {ratio:.2}x")),
        "{ratio:.2} missing from:\n{table}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_ratio_requests_only_the_load_is_measured() {
    let options = BenchOptions {
        image: photo(),
        requests: 2,
        concurrency: vec![1],
        ratio_requests: 0,
    };
    let report = run(test_config(), &options).await.expect("the bench runs");
    assert_eq!(report.load.len(), 1);
    assert!(report.orchestrator_overhead.is_none() && report.priors_alone.is_none());
    let table = render(&report);
    assert!(table.contains("stages at concurrency 1"), "{table}");
    assert!(!table.contains("orchestrated / direct"), "{table}");
    assert!(
        !table.contains("throughput against"),
        "one level has nothing to scale against: {table}"
    );
}
