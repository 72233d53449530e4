# Run in the chroot of the freshly debootstrapped root by run.sh, once per
# cached build: a user with lingering, the test unit, nothing slow at boot.
set -eu
echo ctrmon-guest >/etc/hostname
# A fixed machine id: systemd would otherwise make one at every boot.
echo 0123456789abcdef0123456789abcdef >/etc/machine-id
useradd -m -u 1000 -s /bin/sh u
mkdir -p /var/lib/systemd/linger
touch /var/lib/systemd/linger/u
passwd -d root >/dev/null
systemctl enable ctrmon-test.service
systemctl set-default multi-user.target
# No login prompts, no timers, no hardware waits.
for unit in getty@tty1.service serial-getty@ttyS0.service apt-daily.timer apt-daily-upgrade.timer \
    dpkg-db-backup.timer e2scrub_all.timer fstrim.timer systemd-timesyncd.service; do
    systemctl mask "$unit" >/dev/null 2>&1 || true
done
# The OOM killer's reports stay in the kernel log, off the serial console.
echo 'kernel.printk = 1 4 1 7' >/etc/sysctl.d/50-ctrmon.conf
rm -rf /var/cache/apt/archives/*.deb /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/* /usr/share/locale/*
