# Sourced by the guest's /init: prepares the virtio disk that run.sh attaches
# as a swap device, without enabling it. A test that needs swap turns it on
# with `swapon "$CTRMON_GUEST_SWAP_DEVICE"` and off again, so that every
# other test runs without swap (an OOM there comes at once, not after the
# swap is full).
#
# The modules below (the virtio PCI transport and its block driver) are
# what run.sh looks for in the kernel's modules tree: built in on some
# kernels (Debian's 6.12), modules with other dependencies on others (5.10
# has no virtio_pci_modern_dev). run.sh lists the files to load, in order.
# guest-modules: virtio_pci virtio_blk
while read -r m; do
    [ -n "$m" ] || continue
    insmod "/guest/modules/$m" || return 1
done </guest/modules/order
n=0
while [ ! -b /dev/vda ] && [ "$n" -lt 100 ]; do
    sleep 0.05
    n=$((n + 1))
done
[ -b /dev/vda ] || return 1
mkswap /dev/vda >/dev/null || return 1
export CTRMON_GUEST_SWAP_DEVICE=/dev/vda
