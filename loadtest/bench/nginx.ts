// nginx processes for the benchmark, each with its own config in a temp dir and started as
// `nginx -p DIR -c CONF -e ERRLOG -g 'daemon off;'`, so nothing of the system's nginx setup
// (/etc/nginx, /var/log/nginx, /run/nginx.pid) is read or written, as root or not:
//  - the upstream: one worker returning a fixed 1 KiB body;
//  - the reference proxy: one worker, tuned keep-alive to the upstream (keepalive 512 and
//    keepalive_requests 1000000: the notes show `keepalive 64` reconnects at c=500).

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnManaged, type Managed } from './procs.js';

export const BODY_BYTES = 1024;

function common(dir: string, name: string): string {
  const tmp = join(dir, `${name}-tmp`);
  mkdirSync(tmp, { recursive: true });
  return `worker_processes 1;
worker_rlimit_nofile 19000;
pid ${join(dir, `${name}.pid`)};
error_log ${join(dir, `${name}-error.log`)} warn;
events { worker_connections 16000; multi_accept on; }
`;
}

function httpCommon(dir: string, name: string): string {
  const tmp = join(dir, `${name}-tmp`);
  return `  access_log off;
  client_body_temp_path ${tmp}/body;
  proxy_temp_path ${tmp}/proxy;
  fastcgi_temp_path ${tmp}/fastcgi;
  uwsgi_temp_path ${tmp}/uwsgi;
  scgi_temp_path ${tmp}/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 75s;
`;
}

/** Config of the upstream: every request gets 200 and a fixed BODY_BYTES body. */
export function upstreamConf(dir: string, port: number): string {
  return `${common(dir, 'upstream')}
http {
${httpCommon(dir, 'upstream')}
  server {
    listen 127.0.0.1:${port} backlog=4096;
    location / {
      default_type text/plain;
      return 200 "${'a'.repeat(BODY_BYTES)}";
    }
  }
}
`;
}

/** Config of the reference reverse proxy in front of the upstream. */
export function proxyConf(dir: string, port: number, upstreamPort: number): string {
  return `${common(dir, 'proxy')}
http {
${httpCommon(dir, 'proxy')}
  upstream backend {
    server 127.0.0.1:${upstreamPort};
    keepalive 512;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
  }
  server {
    listen 127.0.0.1:${port} backlog=4096;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`;
}

/** Writes the config and starts nginx in the foreground in its own session. */
export function startNginx(name: string, dir: string, conf: string): Managed {
  const confFile = join(dir, `${name}.conf`);
  writeFileSync(confFile, conf);
  return spawnManaged(
    `nginx ${name}`,
    'nginx',
    ['-p', dir, '-c', confFile, '-e', join(dir, `${name}-error.log`), '-g', 'daemon off;'],
    { logFile: join(dir, `${name}.out.log`), nofile: 20000 },
  );
}
