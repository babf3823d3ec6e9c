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
#        python3 build-wheel.py --unpack ARCHIVE DEST   (a recipe's tarball source laid out in DEST)
#        python3 build-wheel.py --check REQ...   (what the environment misses of REQ..., as JSON)
# Written for every Python 3 a board image may have (3.5 and later): no f-strings.
import importlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile

PIP = ['-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-w']
LEGACY = 'setuptools.build_meta:__legacy__'
# What pip and pypa/build assume for a project that names no build system.
LEGACY_REQUIRES = ['setuptools>=40.8.0']
# The line imgbuild reads when build requirements cannot be met: JSON after it.
UNMET = 'imgbuild-unmet-requirements: '
CHECKED = 'imgbuild-checked-requirements: '
FOUND = 'imgbuild-installed-distributions: '


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
    """(backend, backend_path, requires) per PEP 517/518, or None when pyproject.toml cannot be read here."""
    pyproject = os.path.join(project, 'pyproject.toml')
    if not os.path.exists(pyproject):
        return LEGACY, [], LEGACY_REQUIRES
    loads = toml_loader()
    if loads is None:
        return None
    with open(pyproject, 'rb') as f:
        text = f.read().decode('utf-8')
    table = loads(text).get('build-system')
    if table is None:
        return LEGACY, [], LEGACY_REQUIRES
    backend = table.get('build-backend') or LEGACY
    return backend, [os.path.join(project, p) for p in table.get('backend-path', [])], list(table.get('requires', []))


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


# ---- build requirements (PEP 517/518), checked and met as pypa/build does, without isolation ----

_packaging = []


def packaging_modules():
    """packaging's (Requirement, InvalidRequirement), looked for once per process."""
    if not _packaging:
        _packaging.append(find_packaging())
    return _packaging[0]


def find_packaging():
    """(Requirement, InvalidRequirement) from the image's `packaging`, or from a copy vendored by
    setuptools, pkg_resources or pip loaded by path under a private name: importing pip itself
    would make setuptools' distutils shim step aside (pypa/pip#8761) and break the backend."""
    try:
        module = importlib.import_module('packaging.requirements')
        return module.Requirement, module.InvalidRequirement
    except ImportError:
        pass
    for base in sys.path:
        for vendored in ('setuptools/_vendor/packaging', 'pkg_resources/_vendor/packaging', 'pip/_vendor/packaging'):
            where = os.path.join(base or '.', vendored)
            # packaging >= 22 parses by itself; older copies import their vendor's pyparsing.
            if not os.path.isfile(os.path.join(where, '_parser.py')):
                continue
            spec = importlib.util.spec_from_file_location('_imgbuild_packaging', os.path.join(where, '__init__.py'), submodule_search_locations=[where])
            package = importlib.util.module_from_spec(spec)
            sys.modules['_imgbuild_packaging'] = package
            spec.loader.exec_module(package)
            module = importlib.import_module('_imgbuild_packaging.requirements')
            return module.Requirement, module.InvalidRequirement
    # An older copy (packaging 21, Debian 12's setuptools) through its vendor's own importer, which
    # finds the pyparsing it needs; without any, requirements are checked by name only.
    for name in ('setuptools.extern.packaging.requirements', 'pkg_resources.extern.packaging.requirements'):
        try:
            module = importlib.import_module(name)
            return module.Requirement, module.InvalidRequirement
        except ImportError:
            continue
    return None


def installed_version(name):
    """The version of distribution `name` importable now (sys.path as it is), or None."""
    try:
        from importlib import metadata
    except ImportError:
        metadata = None
    if metadata is not None:
        try:
            return metadata.distribution(name)
        except metadata.PackageNotFoundError:
            return None
    import pkg_resources
    try:
        return pkg_resources.WorkingSet(sys.path).by_key.get(pkg_resources.safe_name(name).lower())
    except Exception:
        return None


# Python distributions that only wrap a program (PyPI's cmake and ninja): a program of the same name
# on PATH meets them, as the image's apt cmake does for onnx's build-system.requires.
PROGRAMS = ('cmake', 'ninja', 'patchelf')


class Program(object):
    """A program on PATH standing for the distribution that would install it."""
    def __init__(self, path, version):
        self.path, self.version, self.requires = path, version, []


def program_for(name):
    """The program meeting distribution `name` (one of PROGRAMS), with its version, or None."""
    name = name.lower()
    path = shutil.which(name) if name in PROGRAMS and hasattr(shutil, 'which') else None
    if not path:
        return None
    try:
        out = subprocess.check_output([path, '--version'], stderr=subprocess.STDOUT).decode('utf-8', 'replace')
    except (OSError, subprocess.CalledProcessError):
        return None
    m = re.search(r'(\d+(?:\.\d+)+)', out)
    return Program(path, m.group(1)) if m else None


def dist_version(dist):
    return getattr(dist, 'version', None)


def dist_requires(dist):
    requires = getattr(dist, 'requires', None)
    if callable(requires):  # pkg_resources
        return [str(r) for r in requires()]
    return list(requires or [])


def unmet(requirements, parse):
    """Requirements (and, for met ones, their own dependencies) the environment does not satisfy:
    a list of (requirement, installed version or None, why)."""
    found, seen, todo = [], set(), [(r, None) for r in requirements]
    while todo:
        text, parent = todo.pop(0)
        if text in seen:
            continue
        seen.add(text)
        if parse is None:
            name = re.match(r'\s*([A-Za-z0-9][A-Za-z0-9._-]*)', text)
            name = name.group(1) if name else text
            if installed_version(name) is None and program_for(name) is None:
                found.append((text, None, 'not installed'))
            continue
        Requirement, InvalidRequirement = parse
        try:
            req = Requirement(text)
        except InvalidRequirement as e:
            raise SystemExit('build-wheel: build requirement %r is not a valid requirement (%s)' % (text, e))
        if req.marker is not None and not req.marker.evaluate({'extra': ''}):
            continue
        dist = installed_version(req.name) or program_for(req.name)
        version = dist_version(dist) if dist is not None else None
        if version is None:
            found.append((text, None, 'not installed' if parent is None else 'needed by %s, not installed' % parent))
        elif req.specifier and not req.specifier.contains(version, prereleases=True):
            found.append((text, version, '%s is installed' % version if parent is None else 'needed by %s; %s is installed' % (parent, version)))
        else:
            for dep in dist_requires(dist):
                if ';' in dep and 'extra' in dep.split(';', 1)[1]:
                    continue
                todo.append((dep, req.name))
    return found


def meet(requirements, what):
    """Install what `requirements` lack into IMGBUILD_BUILD_REQS (never the image), or stop before
    anything is compiled, naming each one."""
    parse = packaging_modules()
    missing = unmet(requirements, parse)
    target = os.environ.get('IMGBUILD_BUILD_REQS')
    for _ in range(8):
        if not missing or not target:
            break
        names = [m[0] for m in missing]
        say('installing %s for %s into the build layer (%s)' % (', '.join(names), what, target))
        sys.stdout.flush()
        r = subprocess.call([sys.executable, '-m', 'pip', 'install', '--no-deps', '--upgrade', '--target', target] + names)
        if r != 0:
            break
        if target not in sys.path:
            sys.path.insert(0, target)
            os.environ['PYTHONPATH'] = os.pathsep.join([target] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p])
            os.environ['PATH'] = os.pathsep.join([os.path.join(target, 'bin'), os.environ.get('PATH', '')])
        importlib.invalidate_caches()
        missing = unmet(requirements, parse)
    report(requirements, target)
    if missing:
        sys.stdout.flush()
        say('the build requirements of %s cannot be met: %s' % (what, '; '.join('%s (%s)' % (m[0], m[2]) for m in missing)))
        print(UNMET + json.dumps([{'requirement': m[0], 'installed': m[1], 'why': m[2]} for m in missing]))
        sys.stdout.flush()
        raise SystemExit(3)


def report(requirements, target):
    """Add each requirement, the version that met it and where it lives (the image, or the
    workspace when it was installed for the build) to the JSON file IMGBUILD_BUILD_REPORT names."""
    out = os.environ.get('IMGBUILD_BUILD_REPORT')
    if not out:
        return
    entries = []
    if os.path.exists(out):
        with open(out) as f:
            entries = json.load(f)
    for text in requirements:
        name = re.match(r'\s*([A-Za-z0-9][A-Za-z0-9._-]*)', text)
        dist = installed_version(name.group(1)) or program_for(name.group(1)) if name else None
        where = str(getattr(dist, '_path', '') or getattr(dist, 'location', '') or '')
        entry = {'requirement': text, 'version': dist_version(dist) if dist is not None else None,
                 'from': 'workspace' if target and where.startswith(target) else 'image'}
        if isinstance(dist, Program):
            entry.update({'from': 'program', 'path': dist.path})
        entries.append(entry)
    if not os.path.isdir(os.path.dirname(out)):
        os.makedirs(os.path.dirname(out))
    with open(out, 'w') as f:
        json.dump(entries, f)


def unpack(archive, into):
    """An sdist or tarball unpacked under `into` (members outside it are refused); its project directory."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            for name in z.namelist():
                if name.startswith('/') or '..' in name.split('/'):
                    raise SystemExit('build-wheel: %s has a member outside its directory: %s' % (archive, name))
            z.extractall(into)
    else:
        with tarfile.open(archive) as t:
            if hasattr(tarfile, 'data_filter'):
                try:
                    t.extractall(into, filter='data')
                except tarfile.FilterError as e:
                    raise SystemExit('build-wheel: %s has a member the data filter refuses: %s' % (archive, e))
            else:
                # One by one: each member is judged with the links extracted before it in place.
                for m in t.getmembers():
                    t.extract(data_member(archive, into, m), into)
    return project_in(into, archive)


def data_member(archive, into, m):
    """tarfile's 'data' filter for Pythons without it (before 3.11.4): files, directories and links
    that stay inside `into`; no devices, no setuid bits, no group or other write, owned by root."""
    root = os.path.realpath(into)

    def inside(p):
        p = os.path.realpath(p)
        return p == root or p.startswith(root + os.sep)

    bad = None
    if m.name.startswith('/') or not inside(os.path.join(root, m.name)):
        bad = 'outside its directory'
    elif m.issym() and (m.linkname.startswith('/') or not inside(os.path.join(root, os.path.dirname(m.name), m.linkname))):
        bad = 'a link out of its directory (-> %s)' % m.linkname
    elif m.islnk() and (m.linkname.startswith('/') or not inside(os.path.join(root, m.linkname))):
        bad = 'a hard link out of its directory (-> %s)' % m.linkname
    elif not (m.isfile() or m.isdir() or m.issym() or m.islnk()):
        bad = 'a device, fifo or other special file'
    if bad:
        raise SystemExit('build-wheel: %s has a member that is %s: %s' % (archive, bad, m.name))
    if not m.issym():
        m.mode &= 0o755
    m.uid = m.gid = 0
    m.uname = m.gname = 'root'
    return m


def project_in(into, archive):
    """The project an archive unpacked into `into`: its one top directory, or `into` itself."""
    tops = os.listdir(into)
    if len(tops) == 1 and os.path.isdir(os.path.join(into, tops[0])):
        return os.path.join(into, tops[0])
    if any(os.path.exists(os.path.join(into, f)) for f in ('pyproject.toml', 'setup.py', 'setup.cfg')):
        return into
    raise SystemExit('build-wheel: %s holds no Python project: neither one top directory nor pyproject.toml or setup.py at its top (it has %s)' % (archive, ', '.join(sorted(tops)) or 'nothing'))


def unpack_here(archive, dest):
    """--unpack: an archive's project laid out in `dest` (its top directory's contents moved up), the archive removed."""
    scratch = tempfile.mkdtemp(prefix='unpack-', dir=dest)
    project = unpack(archive, scratch)
    # The archive goes first: the project may hold a file of the same name.
    os.remove(archive)
    for name in os.listdir(project):
        target = os.path.join(dest, name)
        if os.path.lexists(target):
            raise SystemExit('build-wheel: %s would replace %s' % (archive, target))
        os.rename(os.path.join(project, name), target)
    shutil.rmtree(scratch)
    print('build-wheel: unpacked %s into %s' % (os.path.basename(archive), dest))


def main():
    if sys.path and os.path.abspath(sys.path[0] or '.') == os.path.dirname(os.path.abspath(__file__)):
        del sys.path[0]
    if len(sys.argv) >= 2 and sys.argv[1] == '--check':
        # A recipe's pip list offline: what the environment misses, without installing anything.
        found = unmet(sys.argv[2:], packaging_modules())
        print(CHECKED + json.dumps([{'requirement': m[0], 'installed': m[1], 'why': m[2]} for m in found]))
        return
    if len(sys.argv) >= 2 and sys.argv[1] == '--where':
        # Distributions the environment has: version and where their metadata lives (for dpkg -S).
        found = {}
        for name in sys.argv[2:]:
            dist = installed_version(name)
            if dist is not None:
                found[name] = {'version': dist_version(dist), 'path': str(getattr(dist, '_path', '') or getattr(dist, 'egg_info', '') or '')}
        print(FOUND + json.dumps(found))
        return
    if len(sys.argv) == 4 and sys.argv[1] == '--unpack':
        unpack_here(sys.argv[2], os.path.abspath(sys.argv[3]))
        return
    if len(sys.argv) != 3:
        raise SystemExit('usage: build-wheel.py WHEEL_DIR SOURCE | --unpack ARCHIVE DEST | --check REQ... | --where NAME...')
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
    spec, paths, requires = found
    settings = json.loads(os.environ.get('IMGBUILD_CONFIG_SETTINGS') or '{}') or None
    meet(requires, 'the build system of %s' % os.path.basename(project))
    if os.environ.get('IMGBUILD_STORE_WHEELS') == '1':
        store_wheels()
    # As pip runs a backend: in the project directory, which is not itself on sys.path.
    os.chdir(project)
    backend = load_backend(spec, paths)
    if not hasattr(backend, 'build_wheel'):
        raise SystemExit('build-wheel: backend %s has no build_wheel hook' % spec)
    if hasattr(backend, 'get_requires_for_build_wheel'):
        meet(list(backend.get_requires_for_build_wheel(settings) or []), '%s (%s)' % (os.path.basename(project), spec))
    try:
        name = backend.build_wheel(wheel_dir, settings)
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
