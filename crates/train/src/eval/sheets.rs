//! Picture sheets: for each row, degraded | restored | FFDNet | clean for a few photos with
//! their scores, and the row's worst photo when it is not among them; and one sheet showing
//! every synthesised degradation on one photo.

use clearair_imaging::{ContactSheet, Rgb8Image};
use clearair_model::{Degradation, DegradationKind};

use crate::error::Result;
use crate::eval::RowResult;
use crate::mix::{apply_recipe, describe};
use crate::photos::{image_to_tensor, tensor_to_image};
use crate::protocol::{EVALUATION_SEED, ROWS, RowPriors, degrade_for_row};
use crate::seeding::{Purpose, keyed_rng};

/// Panels in a sheet are shrunk to at most this side.
const PANEL_SIDE: u32 = 256;

/// The sheets' bitmap font has printable ASCII only.
fn ascii(text: &str) -> String {
    text.replace('σ', "sigma ")
        .replace('β', "beta")
        .replace('γ', "gamma")
        .replace('×', "x")
        .replace('°', "deg")
        .replace('–', "-")
}

fn sheet(columns: u32) -> ContactSheet {
    let style = clearair_imaging::SheetStyle {
        max_panel_side: PANEL_SIDE,
        text_scale: 1,
        ..Default::default()
    };
    ContactSheet::new(columns).with_style(style)
}

/// The sheet of one row: one line of panels per kept photo.
pub fn row_sheet(row: &RowResult, model: &str) -> Result<Rgb8Image> {
    let with_reference = row.examples.iter().any(|e| e.reference.is_some());
    let columns = if with_reference { 4 } else { 3 };
    let mut sheet = sheet(columns);
    for example in &row.examples {
        let score = &example.score;
        sheet.add_panel(
            example.degraded.clone(),
            ascii(&format!("{} {:.2} dB", row.row.label, score.input.0)),
        );
        sheet.add_panel(
            example.restored.clone(),
            format!("{model} {:.2} dB", score.restored.0),
        );
        if let (Some(image), Some(reference)) = (&example.reference, score.reference) {
            sheet.add_panel(image.clone(), format!("FFDNet {:.2} dB", reference.0));
        }
        let worst = if example.worst { " (worst)" } else { "" };
        sheet.add_panel(
            example.clean.clone(),
            format!("clean {}{worst}", example.photo),
        );
    }
    // The clean row's input is the reference itself (infinite PSNR): no gain to show.
    let gain = row.gain();
    let gain = if gain.is_finite() {
        format!("  gain {gain:+.2} dB")
    } else {
        String::new()
    };
    sheet.add_line(ascii(&format!(
        "{}: mean over {} photos  input {:.2} dB / {:.3}  {model} {:.2} dB / {:.3}{gain}",
        row.row.label,
        row.images.len(),
        row.input().0,
        row.input().1,
        row.restored().0,
        row.restored().1,
    )));
    Ok(sheet.render()?)
}

/// Every evaluation row's degradation applied to `photo` (evaluation photo `photo_index`),
/// plus two mixtures, beside the clean photo.
pub fn synthesis_sheet(photo: &Rgb8Image, photo_index: usize) -> Result<Rgb8Image> {
    let mut sheet = sheet(5);
    sheet.add_panel(photo.clone(), "clean");
    for (row_index, row) in ROWS.iter().enumerate() {
        let (Some(degradation), degraded) = degrade_for_row(row_index, photo_index, photo)? else {
            continue;
        };
        if row.priors != RowPriors::Served {
            continue;
        }
        sheet.add_panel(
            degraded,
            ascii(&format!("{} ({})", row.label, parameters(&degradation))),
        );
    }
    let mixtures = [
        [DegradationKind::Haze, DegradationKind::Noise],
        [DegradationKind::Rain, DegradationKind::LowLight],
    ];
    for (index, kinds) in mixtures.into_iter().enumerate() {
        let mut rng = keyed_rng(EVALUATION_SEED, Purpose::Evaluation, 900 + index as u64, 0);
        let recipe: Vec<Degradation> = kinds
            .iter()
            .map(|&kind| Degradation::sample(kind, &mut rng))
            .collect();
        let degraded = apply_recipe(&recipe, &image_to_tensor(photo), &mut rng)?;
        sheet.add_panel(tensor_to_image(&degraded)?, ascii(&describe(&recipe)));
    }
    sheet.add_line("Synthesised degradations (seeded ChaCha8; parameters in brackets)");
    Ok(sheet.render()?)
}

/// The parameters of a degradation in a few characters.
fn parameters(degradation: &Degradation) -> String {
    match *degradation {
        Degradation::Noise { sigma } => format!("σ {sigma}"),
        Degradation::Haze { beta, airlight, .. } => format!("β {beta:.2} A {airlight:.2}"),
        Degradation::Rain {
            angle_deg, length, ..
        } => format!("{angle_deg:.0}° {length:.0}px"),
        Degradation::Blur(clearair_model::BlurKernel::Defocus { radius }) => {
            format!("defocus r {radius:.1}")
        }
        Degradation::Blur(clearair_model::BlurKernel::Gaussian { sigma }) => {
            format!("gaussian σ {sigma:.1}")
        }
        Degradation::Blur(clearair_model::BlurKernel::Motion { length, angle_deg }) => {
            format!("motion {length:.0}px {angle_deg:.0}°")
        }
        Degradation::LowLight { gamma, scale, .. } => format!("γ {gamma:.2} ×{scale:.2}"),
    }
}
