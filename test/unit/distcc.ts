// DISTCC_HOSTS entries: what --distcc-hosts accepts, and the usage errors for the rest.
import test from 'ava';
import { checkDistccRequest, distccEnv, parseDistccHost } from '../../lib/accel/distcc.js';
import { UsageError } from '../../lib/core/errors.js';

test('TCP hosts in both orders, with limits and options', (t) => {
  t.like(parseDistccHost('10.0.0.5'), { kind: 'tcp', host: '10.0.0.5', port: 3632, options: [] });
  t.like(parseDistccHost('buildbox:4000/8,lzo'), { kind: 'tcp', host: 'buildbox', port: 4000, limit: 8, options: ['lzo'] });
  t.like(parseDistccHost('buildbox/8:4000'), { kind: 'tcp', host: 'buildbox', port: 4000, limit: 8 });
  t.like(parseDistccHost('[::1]:3633'), { kind: 'tcp', host: '[::1]', port: 3633 });
  t.like(parseDistccHost('farm.example.org,auth=distccd'), { kind: 'tcp', options: ['auth=distccd'] });
  t.like(parseDistccHost('localhost/2'), { kind: 'local' });
  t.like(parseDistccHost('--randomize'), { kind: 'global' });
  t.like(parseDistccHost('--localslots_cpp=4'), { kind: 'global' });
});

test('ssh, pump mode, zeroconf and malformed entries are usage errors', (t) => {
  for (const [spec, re] of [
    ['me@buildbox', /ssh mode/],
    ['@buildbox', /ssh mode/],
    ['buildbox,cpp,lzo', /pump mode/],
    ['+zeroconf', /zeroconf/],
    ['buildbox:1/2:3', /is not HOST/],
    ['buildbox:70000', /out of range/],
    ['buildbox/0', /0 jobs/],
    ['buildbox,gzip', /unknown option/],
    ['-buildbox', /is not HOST/],
  ] as const) {
    t.regex(t.throws(() => parseDistccHost(spec), { instanceOf: UsageError }).message, re, spec);
  }
});

test('--accel distcc needs a server; servers need --accel distcc', (t) => {
  t.throws(() => checkDistccRequest('distcc', undefined), { instanceOf: UsageError, message: /needs at least one distccd server/ });
  t.throws(() => checkDistccRequest('distcc', ['localhost']), { instanceOf: UsageError, message: /needs at least one distccd server/ });
  t.throws(() => checkDistccRequest('cross', ['10.0.0.5']), { instanceOf: UsageError, message: /only used with --accel distcc/ });
  t.deepEqual(checkDistccRequest('cross', undefined), []);
  t.is(checkDistccRequest('distcc', ['localhost', '10.0.0.5/4']).length, 2);
});

test('the environment: fallbacks off, local retry off, no cross rewrite', (t) => {
  t.deepEqual(distccEnv(['10.0.0.5/8', '10.0.0.6'], '/run/imgbuild-accel/distcc'), {
    DISTCC_HOSTS: '10.0.0.5/8 10.0.0.6',
    DISTCC_DIR: '/run/imgbuild-accel/distcc',
    DISTCC_FALLBACK: '0',
    DISTCC_SKIP_LOCAL_RETRY: '1',
    DISTCC_NO_CROSS_REWRITE: '1',
  });
});
