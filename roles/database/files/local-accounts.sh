#!/bin/sh
# Move every account of the users named after the first argument that is not the socket's (localhost) to the host
# the first argument names (the stack network: 172.18.0.0/255.255.0.0), or drop it where that account exists already.
# Prints one line per account changed. Runs inside the database container as root over the socket, with the root
# password from its file (the official images' root@localhost needs it; the built one's is the socket's own).
set -eu
MYSQL_PWD="$(cat "${MARIADB_ROOT_PASSWORD_FILE:-$MYSQL_ROOT_PASSWORD_FILE}")"
export MYSQL_PWD
local_host=$1
shift
sql() { mariadb --user=root --batch --skip-column-names --execute="$1"; }
for user in "$@"; do
  for host in $(sql "SELECT Host FROM mysql.user WHERE User = '$user' AND Host NOT IN ('localhost', '$local_host')"); do
    if [ -n "$(sql "SELECT 1 FROM mysql.user WHERE User = '$user' AND Host = '$local_host'")" ]; then
      sql "DROP USER '$user'@'$host'"
    else
      sql "RENAME USER '$user'@'$host' TO '$user'@'$local_host'"
    fi
    echo "$user@$host -> $user@$local_host"
  done
done
