#!/bin/sh
# Starts nginx for deploy/compose.host-network.yml: every container shares the
# host's network, so the gateways are fixed loopback addresses, not a DNS name.
#   NIXERY_LB_LISTEN    address:port nginx listens on (127.0.0.1:8080)
#   NIXERY_LB_GATEWAYS  space-separated address:port of every gateway
# The proxy settings are the shared ones (deploy/nginx/nixery-proxy.conf).
set -eu
listen=${NIXERY_LB_LISTEN:-127.0.0.1:8080}
gateways=${NIXERY_LB_GATEWAYS:?NIXERY_LB_GATEWAYS names the gateways}
conf=/tmp/nixery-lb.conf
{
  echo 'worker_processes 2;'
  echo 'pid /tmp/nixery-lb.pid;'
  echo 'events { worker_connections 4096; }'
  echo 'http {'
  echo '  access_log /dev/stdout;'
  echo '  error_log /dev/stderr warn;'
  echo '  upstream nixery_gateways {'
  for g in $gateways; do echo "    server $g max_fails=1 fail_timeout=10s;"; done
  echo '  }'
  echo '  server {'
  echo "    listen $listen;"
  echo '    location / {'
  echo '      include /etc/nginx/nixery-proxy.conf;'
  echo '    }'
  echo '  }'
  echo '}'
} > "$conf"
nginx -t -q -c "$conf"
exec nginx -c "$conf" -g 'daemon off;'
