#!/bin/sh
# The image's HEALTHCHECK: grpc.health.v1 Check of this container's own server through
# grpc_health_probe, which fails unless the status is SERVING (models loaded and warm).
#   CLEARAIR_GRPC_PORT            the service's gRPC port (set by the image)
#   CLEARAIR_HEALTH_TLS=true      speak TLS, presenting the client certificate for mutual TLS
#   CLEARAIR_TLS_DIR              where ca.pem, client.pem, client.key are (/etc/clearair/tls)
#   CLEARAIR_HEALTH_CA, CLEARAIR_HEALTH_CERT, CLEARAIR_HEALTH_KEY
#                                 those three files by path instead (e.g. cert-manager's
#                                 ca.crt, tls.crt, tls.key)
#   CLEARAIR_HEALTH_SERVER_NAME   name to verify in the server certificate (localhost)
set -eu
addr="127.0.0.1:${CLEARAIR_GRPC_PORT:?CLEARAIR_GRPC_PORT is not set}"
if [ "${CLEARAIR_HEALTH_TLS:-false}" = true ]; then
    dir="${CLEARAIR_TLS_DIR:-/etc/clearair/tls}"
    exec grpc_health_probe -addr="$addr" -connect-timeout=3s -rpc-timeout=3s \
        -tls -tls-ca-cert="${CLEARAIR_HEALTH_CA:-$dir/ca.pem}" \
        -tls-client-cert="${CLEARAIR_HEALTH_CERT:-$dir/client.pem}" \
        -tls-client-key="${CLEARAIR_HEALTH_KEY:-$dir/client.key}" \
        -tls-server-name="${CLEARAIR_HEALTH_SERVER_NAME:-localhost}"
fi
exec grpc_health_probe -addr="$addr" -connect-timeout=3s -rpc-timeout=3s
