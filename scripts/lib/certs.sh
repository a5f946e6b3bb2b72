# shellcheck shell=bash
# Test certificates, shared by the scripts that start TLS servers (sourced after scripts/lib/common.sh).
# Every certificate is for localhost and 127.0.0.1 and lasts two days.

# make_ca_and_certificate DIR CA_NAME: writes a private CA (DIR/ca.crt, DIR/ca.key) named CA_NAME and a server
# certificate it signed (DIR/server.crt, DIR/server.key).
make_ca_and_certificate() {
    local dir=$1 ca_name=$2
    need_apt openssl openssl
    mkdir -p "$dir"
    # Each step must succeed: `set -e` does not apply in a `||` list.
    (
        cd "$dir" &&
            openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj "/CN=$ca_name" \
                2>/dev/null &&
            openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=localhost" 2>/dev/null &&
            printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >ext.cnf &&
            openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 \
                -extfile ext.cnf 2>/dev/null
    ) || fail "openssl cannot make the test certificates in $dir"
}

# make_self_signed_certificate KEY CERTIFICATE: writes a self-signed certificate (its own root) and its key.
make_self_signed_certificate() {
    local key=$1 certificate=$2
    need_apt openssl openssl
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=localhost" \
        -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
        -keyout "$key" -out "$certificate" >/dev/null 2>&1 || fail "openssl cannot make a test certificate"
}
