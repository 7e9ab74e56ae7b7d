#!/usr/bin/env bash
# deploy/pki/make-pki.sh: make the PKI koreo-controlplane replicas share
# (docs/deploy.md, "PKI"): an EC P-256 CA (ca.crt, ca.key) and a server
# certificate (server.crt, server.key) for every name and address agents and
# koreoctl dial (localhost and 127.0.0.1 are added: the control plane wants
# them; on Kubernetes add the pod hostname the manifests set,
# "koreo-controlplane", or it re-issues the certificate), in the files `koreo-controlplane --pki-dir DIR` loads.
# Run it once, keep ca.key safe, and hand the same four files to every
# replica (a Kubernetes Secret, or each machine's pki directory).  Run it
# again with an existing DIR to renew only the server certificate (the CA,
# and so the pin inside bootstrap tokens, stays).
#
# usage: make-pki.sh --out DIR --host NAME [--host NAME]... [--days N] [--ca-days N]
# Prints the CA's SHA-256 pin (what bootstrap tokens carry) on stdout.
set -euo pipefail

OUT="" DAYS=825 CA_DAYS=3650
HOSTS=()
while [ $# -gt 0 ]; do
  case "$1" in
  --out) OUT=${2:?--out needs a directory}; shift 2 ;;
  --host) HOSTS+=("${2:?--host needs a name or address}"); shift 2 ;;
  --days) DAYS=${2:?}; shift 2 ;;
  --ca-days) CA_DAYS=${2:?}; shift 2 ;;
  -h | --help) sed -n '2,14p' "$0"; exit 0 ;;
  *) echo "make-pki.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done
[ -n "$OUT" ] || { echo "make-pki.sh: --out DIR is required" >&2; exit 2; }
[ ${#HOSTS[@]} -gt 0 ] || { echo "make-pki.sh: at least one --host is required (the names agents dial)" >&2; exit 2; }
command -v openssl >/dev/null || { echo "make-pki.sh: openssl is not installed" >&2; exit 1; }
case "$DAYS$CA_DAYS" in *[!0-9]*) echo "make-pki.sh: --days and --ca-days take a number" >&2; exit 2 ;; esac

umask 077
mkdir -p "$OUT"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

if [ ! -s "$OUT/ca.crt" ] || [ ! -s "$OUT/ca.key" ]; then
  openssl ecparam -name prime256v1 -genkey -noout -out "$TMP/ca.key"
  openssl pkcs8 -topk8 -nocrypt -in "$TMP/ca.key" -out "$OUT/ca.key"
  openssl req -x509 -new -key "$OUT/ca.key" -sha256 -days "$CA_DAYS" -subj "/CN=koreo-ca" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" -out "$OUT/ca.crt" 2>/dev/null
  echo "make-pki.sh: new CA in $OUT/ca.crt" >&2
else
  echo "make-pki.sh: keeping the CA in $OUT/ca.crt" >&2
fi

# koreo-controlplane also wants localhost and 127.0.0.1 in the certificate
# (controlplane/pki.c re-issues one that lacks them).
for h in localhost 127.0.0.1; do
  case " ${HOSTS[*]} " in *" $h "*) ;; *) HOSTS+=("$h") ;; esac
done
SAN=""
for h in "${HOSTS[@]}"; do
  if [[ "$h" =~ ^[0-9.]+$ || "$h" == *:* ]]; then SAN+="IP:$h,"; else SAN+="DNS:$h,"; fi
done
SAN=${SAN%,}
openssl ecparam -name prime256v1 -genkey -noout -out "$TMP/server.key"
openssl pkcs8 -topk8 -nocrypt -in "$TMP/server.key" -out "$TMP/server.p8"
openssl req -new -key "$TMP/server.p8" -subj "/CN=${HOSTS[0]}" -out "$TMP/server.csr"
cat >"$TMP/ext.cnf" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=$SAN
EXT
openssl x509 -req -in "$TMP/server.csr" -CA "$OUT/ca.crt" -CAkey "$OUT/ca.key" -CAcreateserial \
  -CAserial "$TMP/ca.srl" -days "$DAYS" -sha256 -extfile "$TMP/ext.cnf" -out "$TMP/server.crt" 2>/dev/null
mv "$TMP/server.p8" "$OUT/server.key"
mv "$TMP/server.crt" "$OUT/server.crt"
chmod 0600 "$OUT/ca.key" "$OUT/server.key"
chmod 0644 "$OUT/ca.crt" "$OUT/server.crt"
echo "make-pki.sh: server certificate for $SAN in $OUT/server.crt" >&2

# The pin: SHA-256 of the CA's DER SubjectPublicKeyInfo (agent/tls.h).
openssl x509 -in "$OUT/ca.crt" -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1
