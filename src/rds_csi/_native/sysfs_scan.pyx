# cython: language_level=3, boundscheck=False, wraparound=False
"""Cython NVMe sysfs scanner: the same contract as ``sysfs_scan_py``.

The hot part is finding a subsystem by NQN among every ``class/nvme-subsystem/*/subsysnqn``: that loop runs in C
with the GIL released (``readdir``, then ``open``/``read``/``close`` of each small file into a stack buffer and a
``memcmp`` against the wanted NQN), with no Python object made until a subsystem matches. The one subsystem's
details are then read with the same C reads and assembled by the rules ``sysfs_types`` shares with the twin.
"""

from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.string cimport memcmp, memcpy, strlen
from posix.fcntl cimport O_CLOEXEC, O_RDONLY
from posix.fcntl cimport open as c_open
from posix.unistd cimport close as c_close
from posix.unistd cimport read as c_read

import os

from rds_csi._native.sysfs_types import (
    NvmeController,
    NvmeSubsystem,
    check_nqn,
    check_root,
    check_subsystem_name,
    classify_controllers,
    classify_namespaces,
    make_namespace,
    sorted_subsystems,
)

cdef extern from "<dirent.h>" nogil:
    ctypedef struct DIR:
        pass
    struct dirent:
        char d_name[256]
    DIR* opendir(const char* name)
    dirent* readdir(DIR* directory)
    int closedir(DIR* directory)

cdef enum:
    PAGE = 4096  # one read: sysfs serves an attribute in a single page
    PATH_CAP = 4096  # PATH_MAX; a longer path fails like open() would (ENAMETOOLONG: absent)
    NAME_CAP = 256

cdef inline bint is_space(char c) noexcept nogil:
    # What bytes.rstrip() cuts in the twin: ASCII whitespace.
    return c == b' ' or c == b'\t' or c == b'\n' or c == b'\r' or c == b'\x0b' or c == b'\x0c'


cdef Py_ssize_t read_attr(const char* path, char* buf) noexcept nogil:
    """Read at most a page of ``path`` into ``buf``, trailing whitespace cut: its length, or -1 if unreadable."""
    cdef int fd = c_open(path, O_RDONLY | O_CLOEXEC)
    if fd < 0:
        return -1
    cdef Py_ssize_t n = c_read(fd, buf, PAGE)
    c_close(fd)
    if n < 0:
        return -1
    while n > 0 and is_space(buf[n - 1]):
        n -= 1
    return n


cdef Py_ssize_t join(char* out, const char* a, size_t a_len, const char* b, const char* c) noexcept nogil:
    """``out = a + b + c`` (``b`` and ``c`` NUL-terminated); -1 if it would not fit a path."""
    cdef size_t b_len = strlen(b)
    cdef size_t c_len = strlen(c)
    if a_len + b_len + c_len >= PATH_CAP:
        return -1
    memcpy(out, a, a_len)
    memcpy(out + a_len, b, b_len)
    memcpy(out + a_len + b_len, c, c_len + 1)
    return <Py_ssize_t>(a_len + b_len + c_len)


cdef bint first_match(const char* class_dir, size_t dir_len, const char* nqn, Py_ssize_t nqn_len,
                      char* found) noexcept nogil:
    """Copy into ``found`` the first entry of ``class_dir`` whose ``subsysnqn`` is ``nqn``; False if none is."""
    cdef DIR* directory = opendir(class_dir)
    cdef dirent* entry
    cdef char path[PATH_CAP]
    cdef char buf[PAGE]
    cdef Py_ssize_t n
    cdef bint matched = False
    if directory == NULL:
        return False
    while not matched:
        entry = readdir(directory)
        if entry == NULL:
            break
        if entry.d_name[0] == b'.':
            continue
        if join(path, class_dir, dir_len, entry.d_name, b"/subsysnqn") < 0:
            continue
        n = read_attr(path, buf)
        if n == nqn_len and memcmp(buf, nqn, <size_t>n) == 0:
            memcpy(found, entry.d_name, strlen(entry.d_name) + 1)
            matched = True
    closedir(directory)
    return matched


cdef object read_bytes(bytes path):
    cdef char buf[PAGE]
    cdef Py_ssize_t n = read_attr(path, buf)
    if n < 0:
        return None
    return PyBytes_FromStringAndSize(buf, n)


cdef object read_text(bytes path):
    cdef char buf[PAGE]
    cdef Py_ssize_t n = read_attr(path, buf)
    if n < 0:
        return None
    return PyUnicode_DecodeUTF8(buf, n, "surrogateescape")


cdef list entries(bytes directory):
    try:
        return [name for name in os.listdir(directory) if not name.startswith(b".")]
    except OSError:
        return []


cdef object controller(bytes directory, bytes name):
    cdef bytes base = directory + b"/" + name + b"/"
    state = read_text(base + b"state")
    if state is None:  # deleted since the directory was listed
        return None
    return NvmeController(
        name=name.decode(),
        state=state,
        transport=read_text(base + b"transport") or "",
        address=read_text(base + b"address") or "",
        host_nqn=read_text(base + b"hostnqn") or "",
        host_id=read_text(base + b"hostid") or "",
    )


cdef object namespace(bytes directory, bytes name):
    cdef bytes base = directory + b"/" + name + b"/"
    return make_namespace(name.decode(), read_text(base + b"size"), read_text(base + b"dev"))


cdef list namespaces_in(bytes directory, list names):
    found = []
    for name in classify_namespaces(names):
        item = namespace(directory, name)
        if item is not None:
            found.append(item)
    return found


cdef object subsystem(bytes root, bytes name, object wanted):
    cdef bytes directory = root + b"/class/nvme-subsystem/" + name
    nqn = read_bytes(directory + b"/subsysnqn")
    if nqn is None or (wanted is not None and nqn != wanted):
        return None
    names = entries(directory)
    controllers = []
    for entry in classify_controllers(names):
        item = controller(directory, entry)
        if item is not None:
            controllers.append(item)
    namespaces = namespaces_in(directory, names)
    if not namespaces:  # without native multipath the block devices hang off each controller instead
        for item in controllers:
            own = directory + b"/" + item.name.encode()
            namespaces += namespaces_in(own, entries(own))
    return NvmeSubsystem(name.decode(), nqn.decode("utf-8", "surrogateescape"), tuple(controllers), tuple(namespaces))


def find_subsystem(sysfs_root, nqn):
    cdef bytes root = check_root(sysfs_root)
    cdef bytes wanted = check_nqn(nqn)
    cdef bytes class_dir = root + b"/class/nvme-subsystem/"
    cdef const char* dir_path = class_dir
    cdef size_t dir_len = len(class_dir)
    cdef const char* nqn_bytes = wanted
    cdef Py_ssize_t nqn_len = len(wanted)
    cdef char found[NAME_CAP]
    cdef bint matched
    with nogil:
        matched = first_match(dir_path, dir_len, nqn_bytes, nqn_len, found)
    if not matched:
        return None
    return subsystem(root, <bytes>found, wanted)


def read_subsystem(sysfs_root, name, nqn):
    return subsystem(check_root(sysfs_root), check_subsystem_name(name), check_nqn(nqn))


def list_subsystems(sysfs_root):
    cdef bytes root = check_root(sysfs_root)
    found = []
    for name in entries(root + b"/class/nvme-subsystem"):
        item = subsystem(root, name, None)
        if item is not None:
            found.append(item)
    return sorted_subsystems(found)
