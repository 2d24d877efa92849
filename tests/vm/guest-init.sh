#!/bin/busybox sh
# PID 1 of the test guest. Loads the modules listed in /etc/modules (already in dependency order), mounts the
# host's root over virtio-9p, gives it the guest's own proc/sys/dev/run, then runs the job the host wrote and
# reports its exit status between two sentinels the host recognises on the serial console.
# Every mount below lands inside the guest: nothing here can reach the host's own /proc, /sys, /dev or /run.

/bin/busybox --install -s /bin
export PATH=/bin

die() {
    echo "rds-csi-guest: $*"
    poweroff -f
    # Reached only if power-off is unavailable: PID 1 exiting panics, and panic=-1 with -no-reboot stops qemu.
    exit 1
}

mount -t proc proc /proc || die "cannot mount /proc"
mount -t devtmpfs devtmpfs /dev || die "cannot mount /dev"

while read -r module; do
    insmod "/lib/modules/$module" || die "cannot load $module"
done </etc/modules

job=
token=
for word in $(cat /proc/cmdline); do
    case $word in
        rds_csi.job=*) job=${word#*=} ;;
        rds_csi.token=*) token=${word#*=} ;;
    esac
done
[ -n "$job" ] && [ -n "$token" ] || die "kernel command line lacks rds_csi.job / rds_csi.token"

root=/host
# cache=loose lets the guest cache pages and metadata: exec and Python imports get several times faster under
# emulation. It stays coherent for a run because the guest starts with an empty cache and syncs before power-off;
# only host-side changes made while the guest runs may go unseen.
mount -t 9p -o trans=virtio,version=9p2000.L,cache=loose,msize=262144 hostroot "$root" ||
    die "cannot mount the host root over 9p"

# A failed mount must stop here: a mkdir after it would create directories on the host instead.
mount -t proc proc "$root/proc" || die "cannot mount proc"
mount -t sysfs sysfs "$root/sys" || die "cannot mount sysfs"
mount -t configfs configfs "$root/sys/kernel/config" || die "cannot mount configfs"
mount -t devtmpfs devtmpfs "$root/dev" || die "cannot mount devtmpfs"
mkdir -p "$root/dev/pts" "$root/dev/shm"
mount -t devpts -o mode=0620,ptmxmode=0666 devpts "$root/dev/pts" || die "cannot mount devpts"
mount -t tmpfs -o mode=1777 tmpfs "$root/dev/shm" || die "cannot mount /dev/shm"
# devtmpfs has no udev behind it to create these; shells need /dev/fd for process substitution.
ln -s /proc/self/fd "$root/dev/fd"
ln -s /proc/self/fd/0 "$root/dev/stdin"
ln -s /proc/self/fd/1 "$root/dev/stdout"
ln -s /proc/self/fd/2 "$root/dev/stderr"
mount -t tmpfs -o mode=0755 tmpfs "$root/run" || die "cannot mount /run"
mkdir -p "$root/run/lock"
# The host's /tmp stays visible (the caller's cwd and venv may live there); private scratch lives under /run.
scratch=/run/rds-csi-scratch
mkdir "$root$scratch"
mount -t tmpfs -o mode=1777 tmpfs "$root$scratch" || die "cannot mount the scratch tmpfs"

ip link set lo up || die "cannot bring lo up"
hostname rds-csi-guest

# Only emergencies may interleave with the command's output from here on.
dmesg -n 1
echo "$token-begin"
env -i RDS_CSI_IN_GUEST=1 RDS_CSI_GUEST_SCRATCH="$scratch" chroot "$root" /bin/sh "$job/job.sh" </dev/null
status=$?
# The leading newline lets the host find the end marker even when the output does not end with one.
printf '\n%s-end:%s\n' "$token" "$status"
sync
poweroff -f
exit 1
