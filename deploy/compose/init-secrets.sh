#!/bin/sh
# Creates the files compose.yaml mounts as secrets, in ./secrets/ beside this script: random
# passwords, a random JWT secret and a first Temporal payload-encryption key. Files that exist
# are left alone, so running it again only fills in what is missing. The SMTP password and the
# SMS auth token come from the providers: they are created empty, to be filled in by hand.
set -eu
cd "$(dirname "$0")"

RANDOM_SECRETS="postgres_password temporal_db_password grants_pg_password_intake
grants_pg_password_review grants_pg_password_payments grants_pg_password_notifications
grants_jwt_secret"
PROVIDED_SECRETS="grants_smtp_password grants_sms_auth_token"
CODEC_SECRETS="grants_temporal_codec_keys grants_temporal_codec_key_id"

umask 077
mkdir -p secrets
chmod 700 secrets

random() { head -c "$1" /dev/urandom | base64 | tr -d '\n/+='; }

write() { # write NAME VALUE: only when missing; readable by the containers' users
  if [ ! -e "secrets/$1" ]; then
    printf '%s' "$2" >"secrets/$1"
    chmod 644 "secrets/$1"
    echo "created secrets/$1"
  fi
}

for name in $RANDOM_SECRETS; do write "$name" "$(random 32)"; done
for name in $PROVIDED_SECRETS; do write "$name" ""; done

# Payload encryption (shared/codec.py): "id:<base64 of 32 bytes>"; new payloads use the key
# named in grants_temporal_codec_key_id. To rotate, append ",<new id>:<new key>" to the keys
# file, switch the id file to the new id, and keep the old key as long as history needs it.
if [ ! -e secrets/grants_temporal_codec_keys ] && [ ! -e secrets/grants_temporal_codec_key_id ]; then
  key_id="k$(date +%Y%m%d)"
  write grants_temporal_codec_keys "$key_id:$(head -c 32 /dev/urandom | base64 | tr -d '\n')"
  write grants_temporal_codec_key_id "$key_id"
fi
for name in $CODEC_SECRETS; do
  [ -e "secrets/$name" ] || { echo "secrets/$name is missing (the other codec file exists)" >&2; exit 1; }
done

for name in $PROVIDED_SECRETS; do
  [ -s "secrets/$name" ] || echo "fill in secrets/$name (from the provider)"
done
