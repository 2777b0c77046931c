//! Compression on the wire and the Prometheus metrics of the mesh. In a file of its own: the
//! metric registry is per process, and the counts asserted here must not see other tests.

use clearair_e2e::{photo, public_client, restore_request_as, scrape_metrics, start_mesh};
use clearair_proto::v1::ImageFormat;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_calls_work_and_metrics_count_them_by_status_code() {
    let metrics =
        clearair_runtime::metrics::spawn_metrics_endpoint("127.0.0.1:0", std::future::pending())
            .await
            .unwrap();
    let mesh = start_mesh(|_| {}).await;
    use tonic::codec::CompressionEncoding;
    let mut client = public_client(&mesh)
        .await
        .send_compressed(CompressionEncoding::Zstd)
        .accept_compressed(CompressionEncoding::Gzip);
    let ok = client
        .restore(restore_request_as(photo(), ImageFormat::Png))
        .await
        .expect("a zstd-compressed request with a gzip-compressed answer");
    assert!(ok.into_inner().image.is_some());
    let bad = client
        .restore(restore_request_as(b"garbage".to_vec(), ImageFormat::Png))
        .await;
    assert_eq!(bad.unwrap_err().code(), tonic::Code::InvalidArgument);

    let page = scrape_metrics(metrics).await;
    assert!(
        page.starts_with("HTTP/1.0 200") || page.starts_with("HTTP/1.1 200"),
        "{page}"
    );
    for line in [
        r#"clearair_requests_total{code="OK",method="/clearair.v1.ClearAir/Restore",service="orchestrator"} 1"#,
        r#"clearair_requests_total{code="INVALID_ARGUMENT",method="/clearair.v1.ClearAir/Restore",service="orchestrator"} 1"#,
        r#"clearair_requests_total{code="OK",method="/clearair.v1.RestorationService/Restore",service="restoration"} 1"#,
        r#"clearair_in_flight{service="restoration"} 0"#,
        r#"clearair_queue_depth{service="restoration"} 0"#,
    ] {
        assert!(page.contains(line), "missing {line}");
    }
    assert!(page.contains(r#"clearair_model_duration_seconds_count{service="quality"} "#));
    assert!(page.contains(r#"clearair_request_duration_seconds_bucket{method="/clearair.v1.ClearAir/Restore",service="orchestrator",le="#));
    mesh.shutdown().await.unwrap();
}
