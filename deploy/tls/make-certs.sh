#!/usr/bin/env bash
# Makes a throwaway CA and the certificates mutual TLS in the mesh needs, for tests and local
# trials (production certificates come from your PKI or cert-manager):
#   ca.pem, ca.key          the CA (trusted by servers for client certs, by clients for servers)
#   server.pem, server.key  one server certificate for every service: localhost, 127.0.0.1,
#                           ::1, the compose service names, the Helm service names of a
#                           release called `clearair`, and any extra names given
#   client.pem, client.key  the client certificate the orchestrator (and test clients) present
# Keys are ECDSA P-256 in PKCS#8 PEM (what rustls reads). Every run makes a new CA, so two
# runs give two mutually untrusted sets — the tests use that for a "wrong CA" client.
#
# Usage: deploy/tls/make-certs.sh OUT_DIR [extra-dns-name ...]
#   CERT_DAYS=30   validity in days
set -euo pipefail
OUT="${1:?usage: make-certs.sh OUT_DIR [extra-dns-name ...]}"
shift
DAYS="${CERT_DAYS:-30}"
command -v openssl >/dev/null || { echo "make-certs.sh: openssl is required" >&2; exit 1; }
mkdir -p "$OUT"
cd "$OUT"
umask 077

services=(orchestrator quality segmentation degradation restoration)
sans="DNS:localhost,IP:127.0.0.1,IP:::1"
for service in "${services[@]}"; do
    # compose service names, then the Helm chart's Service names for release `clearair`
    sans+=",DNS:$service,DNS:clearair-$service"
    sans+=",DNS:clearair-$service.clearair.svc,DNS:clearair-$service.clearair.svc.cluster.local"
done
for name in "$@"; do
    sans+=",DNS:$name"
done

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

key ca.key
openssl req -x509 -new -key ca.key -sha256 -days "$DAYS" -subj "/CN=ClearAIR throwaway CA $(date +%s%N)" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out ca.pem

leaf() { # name, common name, extended key usage, subjectAltName
    local name="$1" cn="$2" eku="$3" san="$4"
    key "$name.key"
    openssl req -new -key "$name.key" -subj "/CN=$cn" -out "$name.csr"
    printf '%s\n' \
        "basicConstraints=critical,CA:FALSE" \
        "keyUsage=critical,digitalSignature" \
        "extendedKeyUsage=$eku" \
        "subjectAltName=$san" >"$name.ext"
    openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -sha256 \
        -days "$DAYS" -extfile "$name.ext" -out "$name.pem" 2>/dev/null
    rm -f "$name.csr" "$name.ext"
}
leaf server "clearair-mesh" serverAuth "$sans"
leaf client "clearair-orchestrator" clientAuth "DNS:clearair-orchestrator"
rm -f ca.srl
# Readable by the non-root user the containers run as when mounted from this folder.
chmod 644 ./*.pem ./*.key
openssl verify -CAfile ca.pem server.pem client.pem >/dev/null
echo "certificates for mutual TLS in $OUT (valid $DAYS days): ca.pem server.pem/.key client.pem/.key"
