//! The restorer's own thread and `RestoreTiles`: every tile is reported in order and the result
//! is the very image `Restore` gives; a request whose deadline passes while it waits behind
//! others ends at its deadline and the restorer serves on; an invalid
//! request is refused before any stream starts; RestoreStream relays the tiles as progress.

use std::time::Duration;

use clearair_e2e::{channel, photo, public_client, start_mesh};
use clearair_mesh::Service;
use clearair_proto::v1::{
    RestoreRequest, RestoreStreamHeader, RestoreStreamRequest, RestoreTilesRequest, RgbImage,
    restoration_service_client::RestorationServiceClient, restore_stream_request::Part,
    restore_stream_response::Event as StreamEvent, restore_tiles_response::Event,
};
use tokio_stream::StreamExt;
use tonic::Code;

/// A request with the image alone (every prior neutral): a smooth gradient.
fn image_alone(width: u32, height: u32) -> RestoreRequest {
    let rgb = (0..width * height)
        .flat_map(|i| {
            let (x, y) = (i % width, i / width);
            [(x * 255 / width) as u8, (y * 255 / height) as u8, 128]
        })
        .collect();
    RestoreRequest {
        image: Some(RgbImage { width, height, rgb }),
        quality: None,
        masks: None,
        degradation: None,
    }
}

async fn restorer(
    mesh: &clearair_mesh::Mesh,
) -> RestorationServiceClient<tonic::transport::Channel> {
    RestorationServiceClient::new(channel(mesh, Service::Restoration).await)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiles_are_reported_in_order_and_the_result_is_the_one_restore_gives() {
    // 64-pixel tiles (the test configuration): a 150×100 image takes several.
    let mesh = start_mesh(|_| {}).await;
    let mut client = restorer(&mesh).await;

    let unary = client
        .restore(image_alone(150, 100))
        .await
        .expect("Restore")
        .into_inner();
    assert!(
        unary.tiles > 1,
        "the image is tiled: {} tile(s)",
        unary.tiles
    );

    let mut events = client
        .restore_tiles(RestoreTilesRequest {
            restore: Some(image_alone(150, 100)),
        })
        .await
        .expect("RestoreTiles")
        .into_inner();
    let (mut heard, mut result) = (Vec::new(), None);
    while let Some(event) = events.next().await {
        match event.expect("no error").event.expect("an event") {
            Event::Progress(progress) => {
                assert!(result.is_none(), "progress comes before the result");
                heard.push((progress.done, progress.total));
            }
            Event::Result(r) => result = Some(r),
        }
    }
    let result = result.expect("the stream ends with the result");
    let total = unary.tiles;
    assert_eq!(
        heard,
        (1..=total).map(|done| (done, total)).collect::<Vec<_>>(),
        "one event per tile, in order"
    );
    assert_eq!(result.tiles, total);
    assert_eq!(
        result.image, unary.image,
        "the same image as Restore, to the byte"
    );
    mesh.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_deadline_passes_in_the_queue_ends_at_it_and_the_restorer_serves_on() {
    let mesh = start_mesh(|config| {
        config.restoration.server.max_concurrency = 4;
    })
    .await;
    let client = restorer(&mesh).await;
    // A large image keeps the restorer's thread busy for a while (about a hundred 64-pixel
    // tiles: seconds, far beyond the 200 ms below, yet well within the server's timeout on a
    // loaded machine).
    let mut busy = client.clone();
    let long = tokio::spawn(async move { busy.restore(image_alone(640, 480)).await });
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Behind it, a call that may wait 200 ms at most.
    let mut hurried = client.clone();
    let mut request = tonic::Request::new(image_alone(64, 64));
    request.set_timeout(Duration::from_millis(200));
    let status = hurried
        .restore(request)
        .await
        .expect_err("the deadline passes while the large image is restored");
    // The server answers DEADLINE_EXCEEDED at the deadline; on a loaded machine the client's
    // own timer for the same deadline may fire first and cancel the call. Either way the call
    // ends at its deadline (that the queued work is then skipped, not run, is checked on the
    // restorer itself: `restorer::tests::requests_nobody_waits_for_are_not_restored`).
    let client_timer = status.code() == Code::Cancelled && status.message() == "Timeout expired";
    assert!(
        status.code() == Code::DeadlineExceeded || client_timer,
        "{status:?}"
    );

    let long = long.await.unwrap().expect("the large image is restored");
    assert_eq!(long.into_inner().image.unwrap().width, 640);
    // And the restorer serves on.
    let mut after = client.clone();
    after
        .restore(image_alone(64, 64))
        .await
        .expect("the restorer serves after a dropped request");
    mesh.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_request_is_refused_before_any_stream() {
    let mesh = start_mesh(|_| {}).await;
    let mut client = restorer(&mesh).await;
    let mut request = image_alone(32, 32);
    request.image.as_mut().unwrap().rgb.truncate(10);
    let status = client
        .restore_tiles(RestoreTilesRequest {
            restore: Some(request),
        })
        .await
        .expect_err("refused at once");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let status = client
        .restore_tiles(RestoreTilesRequest { restore: None })
        .await
        .expect_err("refused at once");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("restore"), "{status:?}");
    mesh.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_stream_relays_each_tile_as_progress() {
    let mesh = start_mesh(|_| {}).await;
    let mut client = public_client(&mesh).await;
    let data = photo();
    let messages = vec![
        RestoreStreamRequest {
            part: Some(Part::Header(RestoreStreamHeader {
                output_format: 0,
                jpeg_quality: 0,
                total_bytes: data.len() as u64,
                chunk_bytes: 0,
            })),
        },
        RestoreStreamRequest {
            part: Some(Part::Chunk(data)),
        },
    ];
    let mut events = client
        .restore_stream(tokio_stream::iter(messages))
        .await
        .unwrap()
        .into_inner();
    let mut tiles = Vec::new();
    let mut fractions = Vec::new();
    while let Some(event) = events.next().await {
        if let StreamEvent::Progress(progress) = event.unwrap().event.unwrap() {
            fractions.push(progress.fraction);
            if progress.message.starts_with("tile ") {
                assert_eq!(progress.stage, "restoration");
                assert!(
                    (0.45..=0.9).contains(&progress.fraction),
                    "tile progress lies between the priors and the end of restoration: {}",
                    progress.fraction
                );
                tiles.push(progress.message);
            }
        }
    }
    // Events are best effort (one a slow reader missed is dropped), so not every tile need
    // be here; the photo's tiles are many and some are.
    assert!(!tiles.is_empty(), "no tile progress among {fractions:?}");
    assert!(
        tiles[0].contains(" of ") && tiles[0].ends_with(" restored"),
        "{tiles:?}"
    );
    assert!(
        fractions.windows(2).all(|w| w[0] <= w[1]),
        "progress never goes back: {fractions:?}"
    );
    mesh.shutdown().await.unwrap();
}
