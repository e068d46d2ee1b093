#!/usr/bin/env bash
# The age key of example-repo (scripts/run-example.sh runs this before validate and apply).
#
# example-repo keeps no plaintext secret: secrets/db-password.sops is a SOPS file encrypted for an age
# recipient, and the key that decrypts it is .gitops-example/age-key.txt in this checkout, which git ignores.
# The key the committed file was encrypted to was never committed, so in a fresh clone nobody has it: then
# (or whenever the key here cannot decrypt the file) this makes a new key with `gitops secrets keygen` and
# encrypts a new random password to it in place, which rewrites the committed file once. The password goes
# from /dev/urandom through a pipe into `gitops secrets encrypt -`: it is never written to disk unencrypted.
# When the key here decrypts the file, nothing is changed.
set -euo pipefail
cd "$(dirname "$0")/.."
gitops=.venv/bin/gitops
dir=.gitops-example
key=$dir/age-key.txt
secret=example-repo/secrets/db-password.sops

if [ -f "$key" ] && "$gitops" --age-key-file "$key" secrets check "$secret" >/dev/null 2>&1; then
  exit 0
fi

umask 077
mkdir -p "$dir"
new_key=$dir/age-key.txt.new
new_secret=$(mktemp "$secret.XXXXXX")
trap 'rm -f "$new_key" "$new_secret"' EXIT
rm -f "$new_key"
recipient=$("$gitops" secrets keygen --output "$new_key")
head -c 24 /dev/urandom | base64 | "$gitops" secrets encrypt - --age "$recipient" > "$new_secret"
chmod 644 "$new_secret"  # the encrypted file is for the repository, like the one it replaces
mv "$new_key" "$key"
mv "$new_secret" "$secret"
echo "example: $secret encrypted again, with a new random password, for a new age key in $key (kept out of git): this is what you do in your own repository"
