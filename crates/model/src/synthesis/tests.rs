use super::*;
use rand::SeedableRng;
use tch::Device;

/// A smooth, colourful 3×H×W test scene with some fine texture, values within [0.1, 0.9].
fn scene(height: usize, width: usize) -> Tensor {
    let mut data = Vec::with_capacity(3 * height * width);
    for c in 0..3 {
        for y in 0..height {
            for x in 0..width {
                let (xf, yf, cf) = (x as f32, y as f32, c as f32);
                let smooth = 0.25 * (xf * 0.21 + cf * 2.0).sin() * (yf * 0.17 - cf).cos();
                let texture = 0.1 * ((xf * 1.7 + yf * 2.3 + cf).sin());
                data.push(0.5 + smooth + texture);
            }
        }
    }
    Tensor::from_slice(&data).view([3, height as i64, width as i64])
}

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

fn mean(t: &Tensor) -> f64 {
    t.mean(Kind::Double).double_value(&[])
}

#[test]
fn kinds_have_stable_names_and_indices() {
    let names: Vec<&str> = DegradationKind::ALL.iter().map(|k| k.name()).collect();
    assert_eq!(names, ["noise", "haze", "rain", "blur", "low_light"]);
    for (i, kind) in DegradationKind::ALL.into_iter().enumerate() {
        assert_eq!(kind.index(), i);
        assert_eq!(DegradationKind::from_name(kind.name()), Some(kind));
    }
    assert_eq!(DegradationKind::from_name("snow"), None);
    assert_eq!(
        serde_json::to_string(&DegradationKind::LowLight).unwrap(),
        "\"low_light\""
    );
}

#[test]
fn same_seed_gives_bit_identical_images() {
    let clean = scene(24, 32);
    for kind in DegradationKind::ALL {
        let run = |seed| {
            let mut rng = rng(seed);
            let degradation = Degradation::sample(kind, &mut rng);
            (degradation, degradation.apply(&clean, &mut rng).unwrap())
        };
        let (first_params, first) = run(11);
        let (second_params, second) = run(11);
        assert_eq!(first_params, second_params);
        assert!(first.equal(&second), "{kind} is not reproducible");
        let (_, other) = run(12);
        assert!(!first.equal(&other), "{kind} ignores the seed");
        assert!(!first.equal(&clean), "{kind} left the image unchanged");
        let (low, high) = (first.min().double_value(&[]), first.max().double_value(&[]));
        assert!(low >= 0.0 && high <= 1.0, "{kind} escaped [0, 1]");
    }
}

#[test]
fn sampled_parameters_stay_in_their_ranges() {
    let mut rng = rng(3);
    let mut sigmas = std::collections::BTreeSet::new();
    let mut blur_shapes = [false; 2];
    for _ in 0..200 {
        for kind in DegradationKind::ALL {
            let degradation = Degradation::sample(kind, &mut rng);
            assert_eq!(degradation.kind(), kind);
            match degradation {
                Degradation::Noise { sigma } => {
                    sigmas.insert(sigma as u32);
                }
                Degradation::Haze {
                    beta,
                    airlight,
                    flatness,
                } => {
                    assert!((0.5..1.5).contains(&beta) && (0.75..0.95).contains(&airlight));
                    assert_eq!(flatness, 0.0);
                }
                Degradation::Rain {
                    angle_deg,
                    length,
                    density,
                    intensity,
                    width,
                } => {
                    assert_eq!(width, 0.5);
                    assert!(angle_deg.abs() <= 25.0 && (10.0..30.0).contains(&length));
                    assert!((0.001..0.004).contains(&density) && (0.5..0.9).contains(&intensity));
                }
                Degradation::Blur(BlurKernel::Defocus { radius }) => {
                    blur_shapes[0] = true;
                    assert!((1.0..3.0).contains(&radius));
                }
                Degradation::Blur(BlurKernel::Gaussian { .. }) => {
                    panic!("the evaluation's ranges draw no Gaussian blur")
                }
                Degradation::Blur(BlurKernel::Motion { length, angle_deg }) => {
                    blur_shapes[1] = true;
                    assert!((5.0..11.0).contains(&length) && (0.0..180.0).contains(&angle_deg));
                }
                Degradation::LowLight {
                    gamma,
                    scale,
                    noise_sigma,
                } => {
                    assert!((1.2..2.0).contains(&gamma) && (0.15..0.4).contains(&scale));
                    assert!((1.0..5.0).contains(&noise_sigma));
                }
            }
        }
    }
    assert_eq!(sigmas.into_iter().collect::<Vec<_>>(), [15, 25, 50]);
    assert_eq!(blur_shapes, [true, true]);
}

#[test]
fn noise_has_the_requested_standard_deviation() {
    let grey = Tensor::full([3, 64, 64], 0.5, (Kind::Float, Device::Cpu));
    for sigma in [15.0f32, 25.0] {
        let noisy = Degradation::Noise { sigma }
            .apply(&grey, &mut rng(5))
            .unwrap();
        let measured = (&noisy - &grey).std(true).double_value(&[]) * 255.0;
        assert!(
            (measured - sigma as f64).abs() < 0.03 * sigma as f64,
            "σ {sigma}: measured {measured}"
        );
        assert!(mean(&(&noisy - &grey)).abs() < 0.01);
    }
}

/// Mean over pixels of the dark channel (minimum over colours and a 7×7 window).
fn dark_channel_mean(image: &Tensor) -> f64 {
    let per_pixel = image.amin([0], true).unsqueeze(0);
    let patch_min = -(-per_pixel).max_pool2d([7, 7], [1, 1], [3, 3], [1, 1], false);
    mean(&patch_min)
}

#[test]
fn haze_raises_the_dark_channel_most_at_the_top() {
    let clean = scene(48, 48);
    let hazy = Degradation::Haze {
        beta: 1.2,
        airlight: 0.85,
        flatness: 0.0,
    }
    .apply(&clean, &mut rng(1))
    .unwrap();
    let (before, after) = (dark_channel_mean(&clean), dark_channel_mean(&hazy));
    assert!(after > before + 0.15, "dark channel {before} → {after}");
    // Far (top) rows carry more airlight than near (bottom) rows.
    let lift = |rows: Tensor, clean_rows: Tensor| mean(&(rows - clean_rows));
    let top = lift(hazy.narrow(1, 0, 8), clean.narrow(1, 0, 8));
    let bottom = lift(hazy.narrow(1, 40, 8), clean.narrow(1, 40, 8));
    assert!(top > bottom + 0.05, "top lift {top}, bottom lift {bottom}");
    // Contrast drops: transmission < 1 everywhere.
    assert!(hazy.std(true).double_value(&[]) < 0.8 * clean.std(true).double_value(&[]));
}

#[test]
fn low_light_darkens() {
    let clean = scene(32, 32);
    let dark = Degradation::LowLight {
        gamma: 1.5,
        scale: 0.4,
        noise_sigma: 4.0,
    }
    .apply(&clean, &mut rng(2))
    .unwrap();
    assert!(
        mean(&dark) < 0.4 * mean(&clean),
        "{} vs {}",
        mean(&dark),
        mean(&clean)
    );
}

/// Energy of the discrete Laplacian: what blur removes first.
fn high_frequency_energy(image: &Tensor) -> f64 {
    let centre = image
        .narrow(1, 1, image.size()[1] - 2)
        .narrow(2, 1, image.size()[2] - 2);
    let shifted = |dy: i64, dx: i64| {
        image
            .narrow(1, 1 + dy, image.size()[1] - 2)
            .narrow(2, 1 + dx, image.size()[2] - 2)
    };
    let laplacian = shifted(-1, 0) + shifted(1, 0) + shifted(0, -1) + shifted(0, 1) - centre * 4.0;
    mean(&laplacian.square())
}

#[test]
fn blur_removes_high_frequencies_and_keeps_the_mean() {
    let clean = scene(40, 40);
    for kernel in [
        BlurKernel::Defocus { radius: 2.0 },
        BlurKernel::Motion {
            length: 9.0,
            angle_deg: 30.0,
        },
    ] {
        let blurred = Degradation::Blur(kernel)
            .apply(&clean, &mut rng(0))
            .unwrap();
        let (before, after) = (
            high_frequency_energy(&clean),
            high_frequency_energy(&blurred),
        );
        assert!(after < 0.3 * before, "{kernel:?}: {before} → {after}");
        assert!((mean(&blurred) - mean(&clean)).abs() < 5e-3);
    }
}

#[test]
fn kernels_are_normalised_and_shaped() {
    for radius in [0.5f32, 1.0, 2.7] {
        let kernel = defocus_kernel(radius);
        assert!((kernel.weights.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        let half = (kernel.size / 2) as f32;
        for (i, &w) in kernel.weights.iter().enumerate() {
            let (dy, dx) = (
                (i / kernel.size) as f32 - half,
                (i % kernel.size) as f32 - half,
            );
            if (dx * dx + dy * dy).sqrt() >= radius + 0.5 {
                assert_eq!(w, 0.0, "weight outside the disk");
            }
        }
    }
    let horizontal = motion_kernel(7.0, 0.0);
    assert!((horizontal.weights.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    let centre_row = horizontal.size / 2;
    for (i, &w) in horizontal.weights.iter().enumerate() {
        if i / horizontal.size != centre_row {
            assert_eq!(w, 0.0, "weight off the line");
        }
    }
    // Samples from −3.5 to +3.5 px around the centre touch 9 cells, the two ends half.
    let nonzero = horizontal.weights.iter().filter(|&&w| w > 0.0).count();
    assert_eq!(nonzero, 9);
    // Point symmetry (so correlation equals convolution).
    let diagonal = motion_kernel(6.0, 37.0);
    let reversed: Vec<f32> = diagonal.weights.iter().rev().copied().collect();
    for (a, b) in diagonal.weights.iter().zip(&reversed) {
        assert!((a - b).abs() < 1e-6);
    }
}

#[test]
fn rain_adds_bright_streaks_only() {
    let clean = scene(64, 64) * 0.6;
    let rainy = Degradation::Rain {
        angle_deg: 10.0,
        length: 16.0,
        density: 0.003,
        intensity: 0.8,
        width: 0.5,
    }
    .apply(&clean, &mut rng(4))
    .unwrap();
    let lift = &rainy - &clean;
    assert!(
        lift.min().double_value(&[]) >= -1e-6,
        "screen blending never darkens"
    );
    let streaked = lift
        .gt(0.1)
        .to_kind(Kind::Float)
        .mean(Kind::Double)
        .double_value(&[]);
    assert!(
        (0.01..0.3).contains(&streaked),
        "fraction of streak pixels {streaked}"
    );
    assert!(lift.max().double_value(&[]) > 0.3, "streaks must be bright");
}

#[test]
fn mixtures_are_applied_in_physical_order() {
    let clean = scene(16, 16);
    let noise = Degradation::Noise { sigma: 25.0 };
    let haze = Degradation::Haze {
        beta: 1.0,
        airlight: 0.8,
        flatness: 0.0,
    };
    let mixed = Degradation::apply_all(&[noise, haze], &clean, &mut rng(9)).unwrap();
    let mut stream = rng(9);
    let hazy = haze.apply(&clean, &mut stream).unwrap();
    let expected = noise.apply(&hazy, &mut stream).unwrap();
    assert!(
        mixed.equal(&expected),
        "haze (scene) must come before noise (sensor)"
    );
}

#[test]
fn rejects_images_that_are_not_three_planes() {
    let gray = Tensor::zeros([1, 8, 8], (Kind::Float, Device::Cpu));
    let error = Degradation::Noise { sigma: 15.0 }
        .apply(&gray, &mut rng(0))
        .unwrap_err();
    assert!(matches!(error, ModelError::ImageShape { .. }));
}

#[test]
#[ignore = "needs a CUDA device: run with --ignored on a GPU machine"]
fn cuda_tensors_get_the_same_bits_as_cpu_tensors() {
    let device = crate::device::parse_device("cuda").expect("a usable CUDA device");
    let clean = scene(32, 40);
    for kind in DegradationKind::ALL {
        let degradation = Degradation::sample(kind, &mut rng(21));
        let on_cpu = degradation.apply(&clean, &mut rng(22)).unwrap();
        let on_gpu = degradation
            .apply(&clean.to_device(device), &mut rng(22))
            .unwrap();
        assert_eq!(on_gpu.device(), device);
        assert!(
            on_cpu.equal(&on_gpu.to_device(Device::Cpu)),
            "{kind} differs on CUDA"
        );
    }
}

#[test]
fn training_ranges_cover_the_evaluation_ranges_and_the_new_shapes() {
    let mut rng = rng(11);
    let (mut sigmas, mut flat_haze, mut hairlines, mut gaussian) = (Vec::new(), 0, 0, 0);
    for _ in 0..400 {
        for kind in DegradationKind::ALL {
            let degradation = Degradation::sample_training(kind, &mut rng);
            assert_eq!(degradation.kind(), kind);
            match degradation {
                Degradation::Noise { sigma } => sigmas.push(sigma),
                Degradation::Haze { beta, flatness, .. } => {
                    assert!((0.3..2.0).contains(&beta) && (0.0..1.0).contains(&flatness));
                    flat_haze += usize::from(flatness > 0.5);
                }
                Degradation::Rain { width, .. } => hairlines += usize::from(width < 0.2),
                Degradation::Blur(BlurKernel::Gaussian { sigma }) => {
                    assert!((0.5..3.0).contains(&sigma));
                    gaussian += 1;
                }
                _ => {}
            }
        }
    }
    assert!(sigmas.iter().any(|&s| s < 10.0) && sigmas.iter().any(|&s| s > 45.0));
    assert!(NOISE_SIGMAS.iter().all(|level| sigmas.contains(level)));
    assert!(flat_haze > 40 && hairlines > 40 && gaussian > 80);
}

#[test]
fn hairline_rain_is_thinner_than_the_default_streaks() {
    let clean = scene(64, 64) * 0.5;
    let streak_pixels = |width: f32| {
        let rainy = Degradation::Rain {
            angle_deg: 0.0,
            length: 20.0,
            density: 0.003,
            intensity: 0.9,
            width,
        }
        .apply(&clean, &mut rng(5))
        .unwrap();
        (&rainy - &clean)
            .gt(0.05)
            .to_kind(Kind::Float)
            .mean(Kind::Double)
            .double_value(&[])
    };
    let (hairline, broad) = (streak_pixels(0.0), streak_pixels(0.5));
    assert!(
        hairline > 0.0 && hairline < 0.75 * broad,
        "{hairline} vs {broad}"
    );
}

#[test]
fn gaussian_kernels_are_normalised_and_widen_with_sigma() {
    let narrow = gaussian_kernel(0.8);
    let wide = gaussian_kernel(2.5);
    for kernel in [&narrow, &wide] {
        assert!((kernel.weights.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert_eq!(kernel.size % 2, 1);
    }
    assert!(wide.size > narrow.size);
    let centre = |k: &BlurFilter| k.weights[k.weights.len() / 2];
    assert!(centre(&narrow) > centre(&wide));
}
