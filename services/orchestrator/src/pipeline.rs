//! The steps of a request — decode, priors (cached), restore, encode — each timed.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use clearair_imaging::{DecodeLimits, ImagingError, OutputFormat, Rgb8Image};
use clearair_proto::v1::{
    ClearAirRestoreResponse, EncodedImage, RestoreRequest, RestoreResponse, RestoreTilesRequest,
    StageTiming, TileProgress, restore_tiles_response::Event as TileEvent,
};
use clearair_runtime::{deadline::Deadline, model::blocking};
use tonic::{Code, Request, Response, Status};

use crate::{
    cache::PriorCache,
    clients::Clients,
    config::OrchestratorConfig,
    error::OrchestratorError,
    priors::{self, PriorSet, prior_name},
    summary::summarize,
};

/// Hears the request's progress: stage, fraction of the whole request done, what happened.
pub(crate) type Progress<'a> = dyn FnMut(&str, f32, String) + Send + 'a;

/// Wall time per stage, ending with "total".
pub(crate) struct Timings {
    started: Instant,
    stages: Vec<StageTiming>,
}

impl Timings {
    pub(crate) fn start() -> Self {
        Self {
            started: Instant::now(),
            stages: Vec::new(),
        }
    }

    pub(crate) fn record(&mut self, stage: &str, elapsed: Duration) {
        self.stages.push(StageTiming {
            stage: stage.to_owned(),
            milliseconds: elapsed.as_secs_f64() * 1e3,
        });
    }

    pub(crate) fn finish(mut self) -> Vec<StageTiming> {
        let total = self.started.elapsed();
        self.record("total", total);
        self.stages
    }
}

/// How the result is encoded: the request's raw fields, parsed and checked once at the edge
/// (before any model work), then passed along typed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OutputOptions {
    format: OutputFormat,
    /// The request's raw value, checked (0 means the default).
    jpeg_quality: u32,
}

impl OutputOptions {
    /// Parses `output_format` and `jpeg_quality` as a request carries them.
    pub(crate) fn parse(output_format: i32, jpeg_quality: u32) -> Result<Self, OrchestratorError> {
        let format = OutputFormat::from_proto(output_format)?;
        clearair_imaging::jpeg_quality(jpeg_quality)?;
        Ok(Self {
            format,
            jpeg_quality,
        })
    }
}

/// Everything a request needs: peers, the prior cache and the limits. One object runs a
/// request from the encoded upload to the encoded result, for `Restore` and `RestoreStream`
/// alike ([`Pipeline::restore_encoded`]); `Analyze` runs its first two steps.
pub(crate) struct Pipeline {
    clients: Clients,
    cache: PriorCache,
    config: OrchestratorConfig,
    limits: DecodeLimits,
}

impl Pipeline {
    pub(crate) fn new(config: OrchestratorConfig) -> Result<Self, OrchestratorError> {
        Ok(Self {
            clients: Clients::new(&config)?,
            cache: PriorCache::new(config.cache_bytes),
            limits: config.limits.decode_limits(),
            config,
        })
    }

    pub(crate) fn limits(&self) -> &DecodeLimits {
        &self.limits
    }

    /// Runs the whole request on one encoded upload: decode, priors, restore, encode, each
    /// timed; `progress`, when given, hears each stage as it finishes and each restored tile
    /// (stage name, fraction done, what happened).
    pub(crate) async fn restore_encoded(
        &self,
        data: Vec<u8>,
        output: OutputOptions,
        deadline: Option<Deadline>,
        mut progress: Option<&mut Progress<'_>>,
    ) -> Result<ClearAirRestoreResponse, OrchestratorError> {
        if data.is_empty() {
            return Err(OrchestratorError::Image(ImagingError::Empty));
        }
        let watched = progress.is_some();
        let mut report = |stage: &str, fraction: f32, message: String| {
            if let Some(progress) = progress.as_mut() {
                progress(stage, fraction, message);
            }
        };
        let mut timings = Timings::start();
        let image = self.decode(data, &mut timings).await?;
        report("decode", 0.15, "decode done".to_owned());
        let priors = self.priors(&image, deadline, &mut timings).await?;
        report("priors", 0.45, "priors done".to_owned());
        let mut tiles = |done: u32, total: u32| {
            let fraction = 0.45 + 0.45 * done as f32 / total.max(1) as f32;
            report(
                "restoration",
                fraction,
                format!("tile {done} of {total} restored"),
            );
        };
        let tiles = watched.then_some(&mut tiles as &mut (dyn FnMut(u32, u32) + Send));
        let restored = self
            .restore(&image, &priors, deadline, &mut timings, tiles)
            .await?;
        report("restoration", 0.9, "restoration done".to_owned());
        let (width, height) = (image.width(), image.height());
        let encoded = self.encode(restored, output, &mut timings).await?;
        report("encode", 0.98, "encode done".to_owned());
        Ok(ClearAirRestoreResponse {
            image: Some(encoded),
            priors: Some(summarize(&priors)),
            timings: timings.finish(),
            fallbacks: priors.fallbacks.iter().map(|k| *k as i32).collect(),
            width,
            height,
        })
    }

    /// Decodes an upload off the async runtime (large JPEGs take a while).
    pub(crate) async fn decode(
        &self,
        data: Vec<u8>,
        timings: &mut Timings,
    ) -> Result<Rgb8Image, OrchestratorError> {
        let started = Instant::now();
        let limits = self.limits;
        let decoded = blocking(move || clearair_imaging::decode(&data, &limits))
            .await
            .map_err(|s| OrchestratorError::Internal(s.message().to_owned()))??;
        timings.record("decode", started.elapsed());
        Ok(decoded.image)
    }

    /// The image's priors, from the cache or from the three prior services.
    pub(crate) async fn priors(
        &self,
        image: &Rgb8Image,
        deadline: Option<Deadline>,
        timings: &mut Timings,
    ) -> Result<Arc<PriorSet>, OrchestratorError> {
        let started = Instant::now();
        let key = (image.content_hash(), self.config.max_masks);
        if let Some(cached) = self.cache.get(&key) {
            timings.record("priors_cached", started.elapsed());
            return Ok(cached);
        }
        let (set, times) =
            priors::gather(&self.clients.priors, &self.config, image, deadline).await?;
        for (kind, elapsed) in times {
            timings.record(prior_name(kind), elapsed);
        }
        timings.record("priors", started.elapsed());
        let set = Arc::new(set);
        // Fallbacks are transient; only real priors are worth keeping.
        if set.fallbacks.is_empty() {
            self.cache.insert(key, set.clone());
        }
        Ok(set)
    }

    /// Restores `image` with its priors on the restoration service; with `tiles`, through
    /// `RestoreTiles`, which tells of each restored tile (tiles done, tiles in all).
    pub(crate) async fn restore(
        &self,
        image: &Rgb8Image,
        priors: &PriorSet,
        deadline: Option<Deadline>,
        timings: &mut Timings,
        tiles: Option<&mut (dyn FnMut(u32, u32) + Send)>,
    ) -> Result<Rgb8Image, OrchestratorError> {
        if deadline.is_some_and(|d| d.expired()) {
            return Err(OrchestratorError::DeadlineExceeded("restoration"));
        }
        let started = Instant::now();
        // A prior that fell back is absent: the restorer owns what "neutral" means.
        let request = || {
            let mut request = Request::new(RestoreRequest {
                image: Some(image.to_proto()),
                quality: priors.quality.clone(),
                masks: priors.masks.clone(),
                degradation: priors.degradation.clone(),
            });
            Deadline::propagate(deadline, &mut request);
            request
        };
        let failed = |status: Status| {
            if deadline.is_some_and(|d| d.expired()) {
                OrchestratorError::DeadlineExceeded("restoration")
            } else {
                OrchestratorError::Restoration(status)
            }
        };
        let response = match tiles {
            Some(tiles) => self.restore_tiles(&request, tiles).await.map_err(failed)?,
            None => self
                .clients
                .restoration
                .clone()
                .restore(request())
                .await
                .map_err(failed)?
                .into_inner(),
        };
        let restored = response.image.ok_or_else(|| {
            OrchestratorError::Internal("restoration service returned no image".to_owned())
        })?;
        let restored = Rgb8Image::from_proto_owned(restored, &self.limits).map_err(|e| {
            OrchestratorError::Internal(format!("restoration service returned a bad image: {e}"))
        })?;
        if (restored.width(), restored.height()) != (image.width(), image.height()) {
            return Err(OrchestratorError::Internal(format!(
                "restoration service returned {}x{} for a {}x{} image",
                restored.width(),
                restored.height(),
                image.width(),
                image.height()
            )));
        }
        timings.record("restoration", started.elapsed());
        Ok(restored)
    }

    /// `RestoreTiles`: progress events to `tiles`, then the result. A restoration service
    /// older than the call answers UNIMPLEMENTED; it is then asked with `Restore`, without
    /// tile progress.
    async fn restore_tiles(
        &self,
        request: &(dyn Fn() -> Request<RestoreRequest> + Sync),
        tiles: &mut (dyn FnMut(u32, u32) + Send),
    ) -> Result<RestoreResponse, Status> {
        let mut client = self.clients.restoration.clone();
        let tiled = request().map(|restore| RestoreTilesRequest {
            restore: Some(restore),
        });
        let mut events = match client.restore_tiles(tiled).await {
            Ok(events) => events.into_inner(),
            Err(status) if status.code() == Code::Unimplemented => {
                return client.restore(request()).await.map(Response::into_inner);
            }
            Err(status) => return Err(status),
        };
        while let Some(event) = events.message().await? {
            match event.event {
                Some(TileEvent::Progress(TileProgress { done, total })) => tiles(done, total),
                Some(TileEvent::Result(result)) => return Ok(result),
                None => {}
            }
        }
        Err(Status::internal(
            "the restoration service ended RestoreTiles without a result",
        ))
    }

    /// Encodes the result in the requested format off the async runtime.
    pub(crate) async fn encode(
        &self,
        image: Rgb8Image,
        output: OutputOptions,
        timings: &mut Timings,
    ) -> Result<EncodedImage, OrchestratorError> {
        let started = Instant::now();
        let OutputOptions {
            format,
            jpeg_quality,
        } = output;
        // The format and quality were checked before any model work: an encoder failure
        // here is ours, not the request's.
        let (data, media_type) =
            blocking(move || clearair_imaging::encode(&image, format, jpeg_quality))
                .await
                .map_err(|s| OrchestratorError::Internal(s.message().to_owned()))?
                .map_err(|e| OrchestratorError::Internal(format!("encoding the result: {e}")))?;
        timings.record("encode", started.elapsed());
        Ok(EncodedImage {
            data,
            media_type: media_type.to_owned(),
        })
    }
}
