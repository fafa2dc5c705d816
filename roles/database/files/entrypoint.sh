#!/bin/sh
# Initialise an empty data directory with the root password from the environment (MARIADB_ROOT_PASSWORD, which
# the image's with-secret-files reads from MARIADB_ROOT_PASSWORD_FILE), then run mariadbd (with the container's
# arguments, e.g. --max-connections) without it in its environment.
set -eu
datadir=/var/lib/mysql
password="${MARIADB_ROOT_PASSWORD:-${MYSQL_ROOT_PASSWORD:-}}"
if [ ! -d "$datadir/mysql" ]; then
  if [ -z "$password" ]; then
    echo "entrypoint: MARIADB_ROOT_PASSWORD is not set and $datadir is empty" >&2
    exit 1
  fi
  mariadb-install-db --user=mysql --datadir="$datadir" --skip-test-db \
    --auth-root-authentication-method=socket >/dev/null
  mariadbd --user=mysql --datadir="$datadir" --skip-networking --socket=/run/mysqld/init.sock &
  pid=$!
  until mariadb-admin --socket=/run/mysqld/init.sock ping --silent 2>/dev/null; do sleep 0.2; done
  mariadb --socket=/run/mysqld/init.sock <<SQL
DELETE FROM mysql.global_priv WHERE User = '';
CREATE USER 'root'@'%' IDENTIFIED BY '${password}';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION;
FLUSH PRIVILEGES;
SQL
  kill "$pid"
  wait "$pid" || true
  echo "entrypoint: initialised $datadir"
fi
unset MARIADB_ROOT_PASSWORD MYSQL_ROOT_PASSWORD password
exec mariadbd --user=mysql --datadir="$datadir" "$@"
