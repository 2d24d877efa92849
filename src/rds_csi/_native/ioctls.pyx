# cython: language_level=3, boundscheck=False, wraparound=False
"""Cython block and NVMe ioctls: the same contract as ``ioctls_py``, request numbers from the kernel's headers,
each call made with the GIL released (a flush takes as long as the device needs to write back)."""

from libc.errno cimport errno
from libc.stdint cimport uint64_t

import os

from rds_csi._native.ioctls_py import check_fd

cdef extern from "<sys/ioctl.h>" nogil:
    int ioctl(int fd, unsigned long request, ...)

cdef extern from "<linux/fs.h>":
    unsigned long BLKGETSIZE64
    unsigned long BLKFLSBUF

cdef extern from "<linux/nvme_ioctl.h>":
    unsigned long NVME_IOCTL_ID
    unsigned long NVME_IOCTL_RESCAN


cdef int call(int fd, unsigned long request, void* argument) except -1:
    cdef int result
    cdef int error = 0
    with nogil:
        result = ioctl(fd, request, argument)
        if result < 0:
            error = errno
    if result < 0:
        raise OSError(error, os.strerror(error))
    return result


def block_size_bytes(fd):
    cdef uint64_t size = 0
    call(check_fd(fd), BLKGETSIZE64, &size)
    return size


def flush_buffers(fd):
    call(check_fd(fd), BLKFLSBUF, NULL)


def namespace_id(fd):
    return call(check_fd(fd), NVME_IOCTL_ID, NULL)


def rescan_controller(fd):
    call(check_fd(fd), NVME_IOCTL_RESCAN, NULL)
