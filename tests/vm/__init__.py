"""A qemu guest with Debian's kernel (nvmet, nvmet-tcp, nvme-tcp) that runs commands from this machine's root.

``tests.vm.guest.run_in_guest`` is the entry point; ``scripts/vm-run`` wraps it for developers.
"""
