# imgbuild's PEP 517 front end: builds one wheel from a project directory or an sdist with the
# backend already installed in the image, in this one process. It does what
# `python3 -m pip wheel --no-deps --no-build-isolation -w DIR SOURCE` does, without pip's own start-up
# and its separate metadata and build subprocesses: under qemu each of those costs seconds.
# When the project's build-system table cannot be read here (no TOML parser in the image), it hands
# over to that pip command unchanged.
#
# With IMGBUILD_STORE_WHEELS=1 in the environment, a wheel (a *.whl zip written in this process)
# is written uncompressed: imgbuild deflates it natively on the host afterwards, where deflate is
# no longer emulated (with --accel none nothing is moved out of the chroot, and this is not set).
#
# Usage: python3 build-wheel.py WHEEL_DIR SOURCE   (exit 0 and the wheel in WHEEL_DIR, or non-zero)
# Written for every Python 3 a board image may have (3.5 and later): no f-strings.
import importlib
import os
import shutil
import sys
import tarfile
import tempfile
import zipfile

PIP = ['-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-w']
LEGACY = 'setuptools.build_meta:__legacy__'


def say(message):
    sys.stderr.write('build-wheel: %s\n' % message)
    sys.stderr.flush()


def hand_to_pip(wheel_dir, source, why):
    say('%s; building with pip instead' % why)
    sys.stdout.flush()
    os.execv(sys.executable, [sys.executable] + PIP + [wheel_dir, source])


def store_wheels():
    """Every ZipFile opened for writing a *.whl in this process stores its members."""
    original = zipfile.ZipFile.__init__

    def init(self, file, mode='r', compression=zipfile.ZIP_STORED, *args, **kwargs):
        if mode in ('w', 'x') and str(getattr(file, 'name', file)).endswith('.whl'):
            compression = zipfile.ZIP_STORED
        original(self, file, mode, compression, *args, **kwargs)

    zipfile.ZipFile.__init__ = init


def toml_loader():
    for name in ('tomllib', 'tomli', 'pip._vendor.tomli'):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        return lambda text: module.loads(text)
    try:
        module = importlib.import_module('pip._vendor.toml')
    except ImportError:
        return None
    return lambda text: module.loads(text)


def build_system(project):
    """(backend, backend_path) per PEP 517/518, or None when pyproject.toml cannot be read here."""
    pyproject = os.path.join(project, 'pyproject.toml')
    if not os.path.exists(pyproject):
        return LEGACY, []
    loads = toml_loader()
    if loads is None:
        return None
    with open(pyproject, 'rb') as f:
        text = f.read().decode('utf-8')
    table = loads(text).get('build-system', {})
    backend = table.get('build-backend') or LEGACY
    return backend, [os.path.join(project, p) for p in table.get('backend-path', [])]


def load_backend(spec, paths):
    module_name, _, attrs = spec.partition(':')
    sys.path[:0] = paths
    backend = importlib.import_module(module_name)
    for attr in filter(None, attrs.split('.')):
        backend = getattr(backend, attr)
    if paths:
        where = os.path.realpath(getattr(backend, '__file__', '') or '')
        if where and not any(where.startswith(os.path.realpath(p) + os.sep) for p in paths):
            raise SystemExit('build-wheel: backend %s was not loaded from its backend-path %s' % (spec, paths))
    return backend


def unpack(archive, into):
    """An sdist's single top directory, unpacked under `into` (members outside it are refused)."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            for name in z.namelist():
                if name.startswith('/') or '..' in name.split('/'):
                    raise SystemExit('build-wheel: %s has a member outside its directory: %s' % (archive, name))
            z.extractall(into)
    else:
        with tarfile.open(archive) as t:
            if hasattr(tarfile, 'data_filter'):
                t.extractall(into, filter='data')
            else:
                for m in t.getmembers():
                    if m.name.startswith('/') or '..' in m.name.split('/') or not (m.isfile() or m.isdir()):
                        raise SystemExit('build-wheel: %s has a member that is not a plain file inside it: %s' % (archive, m.name))
                t.extractall(into)
    tops = os.listdir(into)
    if len(tops) != 1 or not os.path.isdir(os.path.join(into, tops[0])):
        raise SystemExit('build-wheel: %s does not hold one top directory (it has %s)' % (archive, ', '.join(sorted(tops)) or 'nothing'))
    return os.path.join(into, tops[0])


def main():
    if sys.path and os.path.abspath(sys.path[0] or '.') == os.path.dirname(os.path.abspath(__file__)):
        del sys.path[0]
    if len(sys.argv) != 3:
        raise SystemExit('usage: build-wheel.py WHEEL_DIR SOURCE')
    wheel_dir = os.path.abspath(sys.argv[1])
    source = sys.argv[2]
    if not os.path.isdir(wheel_dir):
        os.makedirs(wheel_dir)
    scratch = None
    if os.path.isdir(source):
        project = os.path.abspath(source)
    else:
        scratch = tempfile.mkdtemp(prefix='unpack-', dir=os.path.dirname(wheel_dir))
        project = unpack(source, scratch)
    try:
        found = build_system(project)
    except Exception as e:  # a pyproject.toml this parser cannot read: pip reports it its own way
        found = None
        why = 'cannot read %s/pyproject.toml here (%s)' % (project, e)
    else:
        why = 'the image has no TOML parser (tomllib, tomli or pip\'s) to read %s/pyproject.toml' % project
    if found is None:
        hand_to_pip(wheel_dir, source, why)
    spec, paths = found
    if os.environ.get('IMGBUILD_STORE_WHEELS') == '1':
        store_wheels()
    # As pip runs a backend: in the project directory, which is not itself on sys.path.
    os.chdir(project)
    backend = load_backend(spec, paths)
    if not hasattr(backend, 'build_wheel'):
        raise SystemExit('build-wheel: backend %s has no build_wheel hook' % spec)
    try:
        name = backend.build_wheel(wheel_dir)
    except SystemExit as e:
        # setuptools turns a failed compiler run into SystemExit("error: command ... failed").
        if e.code is None or e.code == 0:
            raise
        sys.stdout.flush()
        say('%s failed to build the wheel of %s (%s)' % (spec, project, e.code if isinstance(e.code, str) else 'exit %s' % e.code))
        raise SystemExit(1)
    except BaseException as e:
        sys.stdout.flush()
        say('%s failed to build the wheel of %s (%s: %s)' % (spec, project, type(e).__name__, e))
        raise
    if scratch is not None:
        os.chdir(wheel_dir)
        shutil.rmtree(scratch, ignore_errors=True)
    print('build-wheel: built %s with %s' % (name, spec))


main()
# The wheel is written and closed. Skip the interpreter's teardown of every module the backend
# loaded: a tenth of a second or more under qemu, for nothing.
sys.stdout.flush()
sys.stderr.flush()
os._exit(0)
