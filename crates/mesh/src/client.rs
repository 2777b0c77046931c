//! A small client of the public API: what `clearair restore` and `clearair analyze` do.

use std::{path::Path, time::Duration};

use clearair_imaging::{
    ContactSheet, PackedMasks, Rgb8Image,
    sheet::{degradation_kind_name, quality_level_name},
};
use clearair_proto::v1::{
    AnalyzeRequest, AnalyzeResponse, ClearAirRestoreRequest, ClearAirRestoreResponse, EncodedImage,
    ImageFormat, PriorKind, PriorSummary, RestoreProgress, RestoreStreamHeader,
    RestoreStreamRequest, StageTiming, clear_air_client::ClearAirClient,
    restore_stream_request::Part, restore_stream_response::Event,
};
use tonic::transport::Channel;

/// Largest message the client sends or accepts.
const MAX_MESSAGE_BYTES: usize = 256 << 20;

/// Connects to the public API at `endpoint` (e.g. `http://127.0.0.1:50051`).
pub async fn connect(endpoint: &str) -> anyhow::Result<ClearAirClient<Channel>> {
    let channel = tonic::transport::Endpoint::from_shared(endpoint.to_owned())?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to {endpoint}: {e}"))?;
    Ok(ClearAirClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES))
}

/// Restores encoded bytes.
pub async fn restore(
    client: &mut ClearAirClient<Channel>,
    data: Vec<u8>,
    format: ImageFormat,
    timeout: Duration,
) -> Result<ClearAirRestoreResponse, tonic::Status> {
    let mut request = tonic::Request::new(ClearAirRestoreRequest {
        image: Some(EncodedImage {
            data,
            media_type: String::new(),
        }),
        output_format: format as i32,
        jpeg_quality: 0,
    });
    request.set_timeout(timeout);
    Ok(client.restore(request).await?.into_inner())
}

/// Restores encoded bytes through `RestoreStream`: the upload in `chunk_bytes` pieces,
/// `progress` called with every progress event, the result reassembled from its chunks. The
/// response's `image.data` holds the whole result.
pub async fn restore_stream(
    client: &mut ClearAirClient<Channel>,
    data: Vec<u8>,
    format: ImageFormat,
    timeout: Duration,
    chunk_bytes: usize,
    mut progress: impl FnMut(&RestoreProgress),
) -> Result<ClearAirRestoreResponse, tonic::Status> {
    let chunk_bytes = chunk_bytes.max(1);
    let mut messages = vec![RestoreStreamRequest {
        part: Some(Part::Header(RestoreStreamHeader {
            output_format: format as i32,
            jpeg_quality: 0,
            total_bytes: data.len() as u64,
            chunk_bytes: chunk_bytes as u32,
        })),
    }];
    messages.extend(data.chunks(chunk_bytes).map(|chunk| RestoreStreamRequest {
        part: Some(Part::Chunk(chunk.to_vec())),
    }));
    let mut request = tonic::Request::new(tokio_stream::iter(messages));
    request.set_timeout(timeout);
    let mut events = client.restore_stream(request).await?.into_inner();
    let mut result: Option<(ClearAirRestoreResponse, u64)> = None;
    let mut bytes = Vec::new();
    while let Some(message) = events.message().await? {
        match message.event {
            Some(Event::Progress(event)) => progress(&event),
            Some(Event::Result(header)) => {
                let response = header.response.unwrap_or_default();
                bytes.reserve(header.total_bytes as usize);
                result = Some((response, header.total_bytes));
            }
            Some(Event::Chunk(chunk)) => bytes.extend_from_slice(&chunk),
            None => {}
        }
    }
    let (mut response, total) =
        result.ok_or_else(|| tonic::Status::internal("the stream ended without a result"))?;
    if bytes.len() as u64 != total {
        return Err(tonic::Status::data_loss(format!(
            "received {} of {total} result bytes",
            bytes.len()
        )));
    }
    let media_type = response.image.take().unwrap_or_default().media_type;
    response.image = Some(EncodedImage {
        data: bytes,
        media_type,
    });
    Ok(response)
}

/// Analyzes encoded bytes, with the full priors when `include_priors`.
pub async fn analyze(
    client: &mut ClearAirClient<Channel>,
    data: Vec<u8>,
    include_priors: bool,
    timeout: Duration,
) -> Result<AnalyzeResponse, tonic::Status> {
    let mut request = tonic::Request::new(AnalyzeRequest {
        image: Some(EncodedImage {
            data,
            media_type: String::new(),
        }),
        include_priors,
    });
    request.set_timeout(timeout);
    Ok(client.analyze(request).await?.into_inner())
}

/// One line per fact: quality, degradations, masks, fallbacks, timings.
pub fn describe(summary: &PriorSummary, fallbacks: &[i32], timings: &[StageTiming]) -> Vec<String> {
    let mut lines = vec![format!(
        "quality: {:.2}/5 ({})",
        summary.quality_score,
        quality_level_name(summary.quality_level)
    )];
    let degradations: Vec<String> = summary
        .degradations
        .iter()
        .map(|p| format!("{} {:.2}", degradation_kind_name(p.kind), p.probability))
        .collect();
    lines.push(format!("degradations: {}", degradations.join(", ")));
    lines.push(format!(
        "dominant: {}, masks: {}",
        degradation_kind_name(summary.dominant_degradation),
        summary.mask_count
    ));
    if !fallbacks.is_empty() {
        let names: Vec<&str> = fallbacks
            .iter()
            .map(|k| {
                PriorKind::try_from(*k)
                    .map(|k| k.as_str_name())
                    .unwrap_or("unknown")
            })
            .collect();
        lines.push(format!("fallbacks: {}", names.join(", ")));
    }
    let stages: Vec<String> = timings
        .iter()
        .map(|t| format!("{} {:.0} ms", t.stage, t.milliseconds))
        .collect();
    lines.push(format!("timings: {}", stages.join(", ")));
    lines
}

/// Writes the before | after | mask-overlay sheet with the priors' summary.
pub fn write_sheet(
    path: &Path,
    before: &Rgb8Image,
    after: &Rgb8Image,
    analysis: &AnalyzeResponse,
) -> anyhow::Result<()> {
    let mut sheet = ContactSheet::new(3);
    sheet.add_panel(before.clone(), "before");
    sheet.add_panel(after.clone(), "after");
    if let Some(masks) = &analysis.masks {
        let masks = PackedMasks::from_proto(masks, before.width(), before.height())?;
        let overlay = clearair_imaging::mask_overlay(before, &masks)?;
        let regions = match masks.count() {
            1 => "1 region".to_owned(),
            count => format!("{count} regions"),
        };
        sheet.add_panel(overlay, regions);
    }
    if let Some(summary) = &analysis.priors {
        sheet.add_summary(summary);
    }
    let rendered = sheet.render()?;
    let (png, _) = clearair_imaging::encode(&rendered, clearair_imaging::OutputFormat::Png, 0)?;
    std::fs::write(path, png)?;
    Ok(())
}
