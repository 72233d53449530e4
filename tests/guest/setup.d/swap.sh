# Sourced by the guest's /init: prepares the virtio disk that run.sh attaches
# as a swap device, without enabling it. A test that needs swap turns it on
# with `swapon "$CTRMON_GUEST_SWAP_DEVICE"` and off again, so that every
# other test runs without swap (an OOM there comes at once, not after the
# swap is full).
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk; do
    insmod "/guest/modules/$m.ko" || return 1
done
n=0
while [ ! -b /dev/vda ] && [ "$n" -lt 100 ]; do
    sleep 0.05
    n=$((n + 1))
done
[ -b /dev/vda ] || return 1
mkswap /dev/vda >/dev/null || return 1
export CTRMON_GUEST_SWAP_DEVICE=/dev/vda
