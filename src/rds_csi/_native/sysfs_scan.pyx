# cython: language_level=3, boundscheck=False, wraparound=False
"""Cython NVMe sysfs scanner: the same contract as ``sysfs_scan_py`` (the reference).

The hot part is finding a subsystem by NQN among every ``class/nvme-subsystem/*/subsysnqn``: that loop runs in C
with the GIL released (``readdir``, then ``openat``/``read``/``close`` of each small file into a stack buffer
and a ``memcmp`` against the wanted NQN), with no Python object made until a subsystem matches. One subsystem is
then read through a descriptor of its directory (each attribute one ``openat`` away, not a walk from the root),
its entries classified in C, and only the values the result holds become Python objects.
"""

from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.string cimport memcmp, memcpy, strlen
from posix.fcntl cimport O_CLOEXEC, O_RDONLY
from posix.fcntl cimport open as c_open
from posix.unistd cimport close as c_close
from posix.unistd cimport dup as c_dup
from posix.unistd cimport read as c_read

from rds_csi._native.sysfs_types import (
    SECTOR_BYTES,
    NvmeController,
    NvmeNamespace,
    NvmeSubsystem,
    check_nqn,
    check_root,
    check_subsystem_name,
    instance_key,
    sorted_subsystems,
)

cdef extern from "<fcntl.h>" nogil:
    int openat(int directory, const char* path, int flags)
    enum: O_DIRECTORY

cdef extern from "<dirent.h>" nogil:
    ctypedef struct DIR:
        pass
    struct dirent:
        char d_name[256]
    DIR* fdopendir(int fd)
    dirent* readdir(DIR* directory)
    int closedir(DIR* directory)

cdef enum:
    PAGE = 4096  # one read: sysfs serves an attribute in a single page
    NAME_CAP = 256
    PATH_CAP = 512  # NAME_CAP + "/" + an attribute name

cdef inline bint is_space(char c) noexcept nogil:
    # What bytes.rstrip() cuts in the twin: ASCII whitespace.
    return c == c' ' or c == c'\t' or c == c'\n' or c == c'\r' or c == c'\x0b' or c == c'\x0c'


cdef inline bint is_digit(char c) noexcept nogil:
    return c'0' <= c <= c'9'


cdef Py_ssize_t digits(const char* text) noexcept nogil:
    cdef Py_ssize_t n = 0
    while is_digit(text[n]):
        n += 1
    return n


cdef bint is_controller(const char* name) noexcept nogil:
    # nvme[0-9]+
    if memcmp(name, b"nvme", 4) != 0:
        return False
    cdef Py_ssize_t n = digits(name + 4)
    return n > 0 and name[4 + n] == 0


cdef bint is_namespace(const char* name) noexcept nogil:
    # nvme[0-9]+n[0-9]+ (not a hidden path nvmeNcMnK, not a generic ngNnK)
    if memcmp(name, b"nvme", 4) != 0:
        return False
    cdef Py_ssize_t first = digits(name + 4)
    if first == 0 or name[4 + first] != c'n':
        return False
    cdef Py_ssize_t second = digits(name + 5 + first)
    return second > 0 and name[5 + first + second] == 0


cdef Py_ssize_t read_at(int directory, const char* path, char* buf) noexcept nogil:
    """Read at most a page of ``path`` (relative to ``directory``) into ``buf``, trailing whitespace cut: its
    length, or -1 if it cannot be read."""
    cdef int fd = openat(directory, path, O_RDONLY | O_CLOEXEC)
    if fd < 0:
        return -1
    cdef Py_ssize_t n = c_read(fd, buf, PAGE)
    c_close(fd)
    if n < 0:
        return -1
    while n > 0 and is_space(buf[n - 1]):
        n -= 1
    return n


cdef bint join(char* out, const char* entry, const char* attribute) noexcept nogil:
    """``out = entry + "/" + attribute``; False if it would not fit."""
    cdef size_t entry_len = strlen(entry)
    cdef size_t attribute_len = strlen(attribute)
    if entry_len + 1 + attribute_len >= PATH_CAP:
        return False
    memcpy(out, entry, entry_len)
    out[entry_len] = c'/'
    memcpy(out + entry_len + 1, attribute, attribute_len + 1)
    return True


cdef bint first_match(int class_fd, const char* nqn, Py_ssize_t nqn_len, char* found) noexcept nogil:
    """Copy into ``found`` the first entry of the class directory whose ``subsysnqn`` is ``nqn``."""
    cdef int listing_fd = c_dup(class_fd)
    if listing_fd < 0:
        return False
    cdef DIR* listing = fdopendir(listing_fd)
    if listing == NULL:
        c_close(listing_fd)
        return False
    cdef dirent* entry
    cdef char path[PATH_CAP]
    cdef char buf[PAGE]
    cdef Py_ssize_t n
    cdef bint matched = False
    while not matched:
        entry = readdir(listing)
        if entry == NULL:
            break
        if entry.d_name[0] == c'.' or not join(path, entry.d_name, b"subsysnqn"):
            continue
        n = read_at(class_fd, path, buf)
        if n == nqn_len and memcmp(buf, nqn, <size_t>n) == 0:
            memcpy(found, entry.d_name, strlen(entry.d_name) + 1)
            matched = True
    closedir(listing)
    return matched


cdef object text_at(int directory, const char* entry, const char* attribute):
    cdef char path[PATH_CAP]
    cdef char buf[PAGE]
    if not join(path, entry, attribute):
        return None
    cdef Py_ssize_t n = read_at(directory, path, buf)
    if n < 0:
        return None
    return PyUnicode_DecodeUTF8(buf, n, "surrogateescape")


cdef bint parse_decimal(const char* text, Py_ssize_t length, unsigned long long* value) noexcept nogil:
    cdef unsigned long long result = 0
    cdef Py_ssize_t i
    if length <= 0 or length > 19:
        return False
    for i in range(length):
        if not is_digit(text[i]):
            return False
        result = result * 10 + <unsigned long long>(text[i] - c'0')
    value[0] = result
    return True


cdef object namespace_at(int directory, const char* entry):
    """What ``sysfs_types.make_namespace`` makes of ``entry``'s ``size`` and ``dev``, parsed in C."""
    cdef char path[PATH_CAP]
    cdef char buf[PAGE]
    cdef Py_ssize_t n
    cdef Py_ssize_t colon = -1
    cdef unsigned long long sectors = 0, major = 0, minor = 0
    cdef Py_ssize_t i
    if not join(path, entry, b"size"):
        return None
    n = read_at(directory, path, buf)
    if not parse_decimal(buf, n, &sectors):
        return None
    join(path, entry, b"dev")
    n = read_at(directory, path, buf)
    for i in range(n if n > 0 else 0):
        if buf[i] == c':':
            colon = i
            break
    if colon < 0 or not parse_decimal(buf, colon, &major) or not parse_decimal(buf + colon + 1, n - colon - 1, &minor):
        return None
    return NvmeNamespace(entry.decode(), sectors * SECTOR_BYTES, major, minor)


cdef tuple classify(int directory):
    """The controller and namespace entries of an open directory, each sorted by instance number."""
    controllers, namespaces = [], []
    cdef int listing_fd = c_dup(directory)
    if listing_fd < 0:
        return controllers, namespaces
    cdef DIR* listing = fdopendir(listing_fd)
    if listing == NULL:
        c_close(listing_fd)
        return controllers, namespaces
    cdef dirent* entry
    try:
        while True:
            entry = readdir(listing)
            if entry == NULL:
                break
            if is_controller(entry.d_name):
                controllers.append(<bytes>entry.d_name)
            elif is_namespace(entry.d_name):
                namespaces.append(<bytes>entry.d_name)
    finally:
        closedir(listing)
    if len(controllers) > 1:
        controllers.sort(key=instance_key)
    if len(namespaces) > 1:
        namespaces.sort(key=instance_key)
    return controllers, namespaces


cdef list namespaces_in(int directory, list names):
    found = []
    for name in names:
        item = namespace_at(directory, name)
        if item is not None:
            found.append(item)
    return found


cdef object controller_at(int directory, bytes name):
    state = text_at(directory, name, b"state")
    if state is None:  # deleted since the directory was listed
        return None
    return NvmeController(
        name=name.decode(),
        state=state,
        transport=text_at(directory, name, b"transport") or "",
        address=text_at(directory, name, b"address") or "",
        host_nqn=text_at(directory, name, b"hostnqn") or "",
    )


cdef object subsystem_at(int class_fd, bytes name, object wanted):
    cdef char buf[PAGE]
    cdef int directory = openat(class_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    cdef int own
    cdef Py_ssize_t n
    if directory < 0:
        return None
    try:
        n = read_at(directory, b"subsysnqn", buf)
        if n < 0:
            return None
        if wanted is not None and (n != len(wanted) or memcmp(buf, <const char*>wanted, <size_t>n) != 0):
            return None
        nqn = PyUnicode_DecodeUTF8(buf, n, "surrogateescape")
        controller_names, namespace_names = classify(directory)
        controllers = []
        for entry in controller_names:
            item = controller_at(directory, entry)
            if item is not None:
                controllers.append(item)
        namespaces = namespaces_in(directory, namespace_names)
        if not namespaces:  # without native multipath the block devices hang off each controller instead
            for item in controllers:
                own = openat(directory, item.name.encode(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)
                if own < 0:
                    continue
                try:
                    namespaces += namespaces_in(own, classify(own)[1])
                finally:
                    c_close(own)
        return NvmeSubsystem(name.decode(), nqn, tuple(controllers), tuple(namespaces))
    finally:
        c_close(directory)


cdef int open_class(bytes root):
    cdef bytes path = root + b"/class/nvme-subsystem"
    return c_open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)


def find_subsystem(sysfs_root, nqn):
    cdef bytes root = check_root(sysfs_root)
    cdef bytes wanted = check_nqn(nqn)
    cdef const char* nqn_bytes = wanted
    cdef Py_ssize_t nqn_len = len(wanted)
    cdef char found[NAME_CAP]
    cdef bint matched
    cdef int class_fd = open_class(root)
    if class_fd < 0:
        return None
    try:
        with nogil:
            matched = first_match(class_fd, nqn_bytes, nqn_len, found)
        if not matched:
            return None
        return subsystem_at(class_fd, <bytes>found, wanted)
    finally:
        c_close(class_fd)


def read_subsystem(sysfs_root, name, nqn):
    cdef bytes root = check_root(sysfs_root)
    cdef bytes entry = check_subsystem_name(name)
    cdef bytes wanted = check_nqn(nqn)
    cdef int class_fd = open_class(root)
    if class_fd < 0:
        return None
    try:
        return subsystem_at(class_fd, entry, wanted)
    finally:
        c_close(class_fd)


def list_subsystems(sysfs_root):
    cdef bytes root = check_root(sysfs_root)
    cdef int class_fd = open_class(root)
    cdef int listing_fd
    cdef DIR* listing
    cdef dirent* entry
    if class_fd < 0:
        return []
    names = []
    try:
        listing_fd = c_dup(class_fd)
        if listing_fd < 0:
            return []
        listing = fdopendir(listing_fd)
        if listing == NULL:
            c_close(listing_fd)
            return []
        try:
            while True:
                entry = readdir(listing)
                if entry == NULL:
                    break
                if entry.d_name[0] != c'.':
                    names.append(<bytes>entry.d_name)
        finally:
            closedir(listing)
        found = []
        for name in names:
            item = subsystem_at(class_fd, name, None)
            if item is not None:
                found.append(item)
        return sorted_subsystems(found)
    finally:
        c_close(class_fd)
