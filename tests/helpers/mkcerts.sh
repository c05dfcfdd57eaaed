#!/bin/sh
# mkcerts.sh DIR - the certificates the TLS tests use, made fresh with openssl in DIR:
#   ca.pem ca.key            the test CA
#   server.pem server.key    CN localhost, SANs DNS:localhost and IP:127.0.0.1, from the CA
#   client.pem client.key    a client certificate from the CA (for tls-auth-clients yes)
#   rogue-ca.pem             another CA; rogue.pem rogue.key: a server certificate from it,
#                            rogue-client.pem rogue-client.key: a client certificate from it
#   expired.pem expired.key  from the CA, valid only in 2020
#   other.pem other.key      from the CA, for DNS:other.example only
set -eu
d=$1
mkdir -p "$d"
cd "$d"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ca() { # ca NAME CN
    key "$1.key"
    openssl req -x509 -new -key "$1.key" -sha256 -days 3650 -subj "/CN=$2" -out "$1.pem" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
}
# leaf NAME CA CN SAN EXTENDED_USAGE
leaf() {
    key "$1.key"
    openssl req -new -key "$1.key" -subj "/CN=$3" -out "$1.csr"
    printf 'subjectAltName=%s\nextendedKeyUsage=%s\nbasicConstraints=CA:FALSE\n' "$4" "$5" >"$1.ext"
    openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial -sha256 \
        -days 365 -extfile "$1.ext" -out "$1.pem" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
}
ca ca "edgekv test CA"
ca rogue-ca "rogue test CA"
leaf server ca localhost "DNS:localhost,IP:127.0.0.1" serverAuth
leaf client ca edgekv-client "DNS:edgekv-client" clientAuth
leaf rogue rogue-ca localhost "DNS:localhost,IP:127.0.0.1" serverAuth
leaf rogue-client rogue-ca edgekv-client "DNS:edgekv-client" clientAuth
leaf other ca other.example "DNS:other.example" serverAuth
# expired: `openssl ca` is the one command of OpenSSL 3.0 that sets both dates
key expired.key
openssl req -new -key expired.key -subj "/CN=localhost" -out expired.csr
mkdir -p caroot
: >caroot/index.txt
cat >caroot/ca.cnf <<CNF
[ca]
default_ca = test
[test]
dir = caroot
database = caroot/index.txt
new_certs_dir = caroot
serial = caroot/serial
default_md = sha256
policy = any
copy_extensions = none
unique_subject = no
[any]
commonName = supplied
[ext]
subjectAltName = DNS:localhost,IP:127.0.0.1
extendedKeyUsage = serverAuth
CNF
echo 01 >caroot/serial
openssl ca -batch -config caroot/ca.cnf -cert ca.pem -keyfile ca.key -in expired.csr \
    -out expired.pem -startdate 20200101000000Z -enddate 20200102000000Z -extensions ext \
    -notext >/dev/null 2>&1
rm -rf caroot expired.csr
