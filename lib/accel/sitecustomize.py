# imgbuild --accel full: the start-up of a host-architecture Python that stands in for the image's own
# (same version; its pure-Python standard library and site-packages are the image's, its compiled
# modules the host's). imgbuild puts this file in that Python's library directory, where `site`
# imports it before any build code runs. It makes the interpreter answer as the board's would:
#   - sys.executable is the shim that starts this interpreter again (never the host binary), and
#     sys.prefix the image's /usr;
#   - os.uname() and platform.machine() name the board's machine, sys.implementation._multiarch its
#     triple, and a 32-bit board's sys.maxsize is 32-bit (sysconfig's data and platform come from
#     _PYTHON_SYSCONFIGDATA_NAME and _PYTHON_HOST_PLATFORM, which the shim sets);
#   - an import that needs the board's own compiled code (an extension module of the image, which
#     this interpreter cannot load) is written to IMGBUILD_TARGET_CODE: imgbuild then builds the
#     target again under the emulated Python, whatever the backend did with the ImportError.
# Written for every Python 3 a board may have (3.5 and later): no f-strings.
import os
import sys

_machine = os.environ.get('IMGBUILD_TARGET_MACHINE')
_triple = os.environ.get('IMGBUILD_TARGET_TRIPLE')
_record = os.environ.get('IMGBUILD_TARGET_CODE')

sys.executable = os.path.join(sys.prefix, 'bin', 'python%d.%d' % sys.version_info[:2])
# sys.path is set: from here on the prefix is the image's, as its own Python sees it (where
# distutils finds Python.h, pip its schemes and Debian's pip its wheels), never the stand-in's.
sys.prefix = sys.exec_prefix = sys.base_prefix = sys.base_exec_prefix = '/usr'
if _triple:
    try:
        sys.implementation._multiarch = _triple
    except (AttributeError, TypeError):
        pass
if os.environ.get('IMGBUILD_TARGET_BITS') == '32':
    sys.maxsize = 2 ** 31 - 1

if _machine and hasattr(os, 'uname'):
    _host_uname = os.uname

    def _uname():
        u = _host_uname()
        try:
            return type(u)((u.sysname, u.nodename, u.release, u.version, _machine))
        except TypeError:
            return u

    os.uname = _uname


# Compiled accelerators whose absence the library answers, by design, with an equivalent pure-Python
# implementation: trying them is not the build running the board's code. (protobuf: the shim also
# sets PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python for this interpreter, so it asks for no other.)
_OPTIONAL = ('google.protobuf.internal._api_implementation', 'google.protobuf.pyext._message', 'google._upb._message')


def _note(name, what):
    """Record target code this interpreter was asked to run (one line each)."""
    if not _record or name in _OPTIONAL:
        return
    try:
        with open(_record, 'a') as f:
            f.write(what.replace('\n', ' ') + '\n')
    except OSError:
        pass


def _elf_machine(path):
    try:
        with open(path, 'rb') as f:
            head = f.read(20)
    except OSError:
        return None
    if len(head) < 20 or head[:4] != b'\x7fELF':
        return None
    return int.from_bytes(head[18:20], 'little' if head[5:6] == b'\x01' else 'big')


_HOST_MACHINE = 62  # EM_X86_64


def _target_suffixes():
    tags = ['.abi3.so', '.so']
    if _triple:
        tags.insert(0, '.cpython-%d%d-%s.so' % (sys.version_info[0], sys.version_info[1], _triple))
    return tags


class _TargetCodeFinder(object):
    """Last on sys.meta_path: an import nothing else found, which an extension module of the image
    would have met (its file name carries the board's triple, so this interpreter never sees it)."""

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        leaf = name.rpartition('.')[2]
        for base in (path if path is not None else sys.path):
            for suffix in _target_suffixes():
                candidate = os.path.join(base or '.', leaf + suffix)
                if os.path.isfile(candidate):
                    machine = _elf_machine(candidate)
                    if machine is not None and machine != _HOST_MACHINE:
                        _note(name, 'import %s: %s is compiled for the board' % (name, os.path.realpath(candidate)))
                        raise ImportError('imgbuild --accel full: %s is the board\'s compiled code (%s), which the host\'s Python cannot load; imgbuild builds this target again under the emulated Python' % (name, candidate), name=name)
        return None


sys.meta_path.append(_TargetCodeFinder)

try:
    from importlib.machinery import ExtensionFileLoader as _Loader

    _create = _Loader.create_module

    def _create_module(self, spec):
        try:
            return _create(self, spec)
        except ImportError:
            machine = _elf_machine(self.path)
            if machine is not None and machine != _HOST_MACHINE:
                _note(spec.name, 'import %s: %s is compiled for the board' % (spec.name, os.path.realpath(self.path)))
            raise

    _Loader.create_module = _create_module
except (ImportError, AttributeError):
    pass
