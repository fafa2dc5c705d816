#!/usr/bin/env bash
# The GitLab CI/CD variables of your project, from your credentials file: one NAME=value line each, the list
# the file's header gives (CI_VARIABLES) and extras/gitlab-ci.yml checks. Add each under Settings > CI/CD >
# Variables (Add variable: the name as Key, the rest as Value; mask the passwords and the key, protect all).
#
#   demo/scripts/ci_variables.sh alice.env
#
# The stack's runners hand every job the CA certificate themselves (STACK_CA_FILE); on another runner, add it
# as a variable of type File named STACK_CA_FILE.
set -euo pipefail

usage="usage: ci_variables.sh CREDENTIALS_FILE   (the .env file your administrator gave you)"
[[ $# -eq 1 && $1 != -* ]] || { echo "$usage" >&2; exit 2; }
credentials=$1
[[ -f $credentials && -r $credentials ]] || { printf 'ci_variables.sh: %s: no such readable file\n%s\n' "$credentials" "$usage" >&2; exit 1; }

declare -A values
names=""
while IFS= read -r line || [[ -n $line ]]; do
  line=${line%$'\r'}
  if [[ $line =~ ^#\ CI_VARIABLES=(.*)$ ]]; then
    names=${BASH_REMATCH[1]}
  elif [[ $line =~ ^([A-Z_][A-Z0-9_]*)=(.*)$ ]]; then
    values[${BASH_REMATCH[1]}]=${BASH_REMATCH[2]}
  fi
done < "$credentials"
[[ -n $names ]] || { echo "ci_variables.sh: $credentials has no CI_VARIABLES line: not a credentials file of the stack" >&2; exit 1; }

for name in $names; do
  [[ -n ${values[$name]:-} ]] || { echo "ci_variables.sh: $credentials has no $name: ask your administrator for a new file" >&2; exit 1; }
done
for name in $names; do
  printf '%s=%s\n' "$name" "${values[$name]}"
done
