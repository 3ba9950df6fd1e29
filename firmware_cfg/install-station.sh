#!/bin/sh
# Install an fpverify station on a Raspberry Pi (Raspberry Pi OS Bookworm, aarch64), as root:
#
#   sh install-station.sh --bundle DIR [--wheels DIR | --index URL] [--kiosk-user USER] [--his-host ADDR]
#
#   --bundle DIR      the folder `fpverify server provision-device` wrote for this station
#                     (edge.toml, ca.pem, device.crt, device.key, cache.key, device.token)
#   --wheels DIR      install fpverify[edge] from wheels in DIR only (no network); else from --index
#   --index URL       a package index (the hospital's mirror); wheels only either way, nothing compiled
#   --kiosk-user USER the desktop user logged in on the screen: the kiosk page opens for them
#   --his-host ADDR   serve the HIS API on ADDR (the desk's LAN address); default 127.0.0.1
#
# What it does (docs/station.md, "Raspberry Pi install"): the `fpverify` system user; a virtual
# environment in /opt/fpverify with `pip install --only-binary=:all: 'fpverify[edge]'`; the bundle
# into /etc/fpverify (the station's own folder, mode 700, secrets 600); a HIS token; the udev rule; the station
# unit with the kiosk drop-in; the kiosk browser unit and autostart for the screen user; then it
# enables and starts the station. Running it again updates the software and keeps the store.
#
# For tests: ROOT=/some/dir installs below that folder, and the commands it calls (useradd, chown,
# systemctl, udevadm, python3) are taken from PATH.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
ROOT=${ROOT:-}
bundle= wheels= index= kiosk_user= his_host=127.0.0.1
while [ $# -gt 0 ]; do
    case "$1" in
        --bundle) bundle=$2; shift 2 ;;
        --wheels) wheels=$2; shift 2 ;;
        --index) index=$2; shift 2 ;;
        --kiosk-user) kiosk_user=$2; shift 2 ;;
        --his-host) his_host=$2; shift 2 ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "install-station: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
fail() { echo "install-station: $*" >&2; exit 2; }
[ -n "$bundle" ] || fail "--bundle DIR is required (from: fpverify server provision-device)"
for f in edge.toml ca.pem device.crt device.key; do
    [ -f "$bundle/$f" ] || fail "the bundle $bundle has no $f"
done
[ -z "$ROOT" ] && [ "$(id -u)" -ne 0 ] && fail "run as root"
case "$his_host" in *[!0-9A-Za-z.:-]*|"") fail "--his-host: an address, e.g. 192.168.10.21" ;; esac

etc=$ROOT/etc/fpverify venv=$ROOT/opt/fpverify/.venv units=$ROOT/etc/systemd/system

echo "1/6 user fpverify"
if ! id fpverify >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/fpverify --shell /usr/sbin/nologin --groups dialout fpverify
fi

echo "2/6 software: fpverify[edge] from wheels only"
mkdir -p "$ROOT/opt/fpverify"
[ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
if [ -n "$wheels" ]; then
    "$venv/bin/pip" install --upgrade --only-binary=:all: --no-index --find-links "$wheels" 'fpverify[edge]'
elif [ -n "$index" ]; then
    "$venv/bin/pip" install --upgrade --only-binary=:all: --index-url "$index" 'fpverify[edge]'
else
    "$venv/bin/pip" install --upgrade --only-binary=:all: 'fpverify[edge]'
fi

echo "3/6 configuration and secrets in /etc/fpverify"
install -d -m 700 "$etc"
for f in "$bundle"/*; do
    name=$(basename "$f")
    case "$name" in
        *.key|*.token|cache.key) install -m 600 "$f" "$etc/$name" ;;
        *) install -m 644 "$f" "$etc/$name" ;;
    esac
done
[ -f "$etc/cache.key" ] || "$venv/bin/fpverify" edge keygen --out "$etc/cache.key"
if [ ! -f "$etc/his.token" ]; then
    (umask 077; head -c 32 /dev/urandom | base64 > "$etc/his.token")
    echo "   a new HIS token is in /etc/fpverify/his.token: give it to the desk's HIS integration"
fi
if ! grep -q '^\[kiosk\]' "$etc/edge.toml"; then
    cat >> "$etc/edge.toml" <<EOF

[kiosk]
enabled = true

[his]
enabled = true
host = "$his_host"
token = { credential = "fpverify-his-token", file = "/etc/fpverify/his.token" }
EOF
fi
chown -R fpverify:fpverify "$etc"  # the station reads its certificate and key itself
install -d -m 700 "$ROOT/var/lib/fpverify"
chown fpverify:fpverify "$ROOT/var/lib/fpverify"

echo "4/6 sensor device name and station units"
install -D -m 644 "$here/99-fpsensor.rules" "$ROOT/etc/udev/rules.d/99-fpsensor.rules"
install -D -m 644 "$here/fpverify-edge.service" "$units/fpverify-edge.service"
install -D -m 644 "$here/fpverify-edge.service.d/kiosk.conf" "$units/fpverify-edge.service.d/kiosk.conf"
udevadm control --reload-rules && udevadm trigger || true

echo "5/6 kiosk screen"
if [ -n "$kiosk_user" ]; then
    home=$(getent passwd "$kiosk_user" | cut -d: -f6)
    [ -n "$home" ] || fail "--kiosk-user $kiosk_user: no such user"
    home=$ROOT$home
    install -D -m 644 "$here/kiosk/fpverify-kiosk.service" "$home/.config/systemd/user/fpverify-kiosk.service"
    install -D -m 644 "$here/kiosk/fpverify-kiosk.desktop" "$home/.config/autostart/fpverify-kiosk.desktop"
    mkdir -p "$home/.config/labwc"
    touch "$home/.config/labwc/autostart"
    grep -q fpverify-kiosk "$home/.config/labwc/autostart" || cat "$here/kiosk/autostart" >> "$home/.config/labwc/autostart"
    chown -R "$kiosk_user:" "$home/.config"
else
    echo "   no --kiosk-user: no screen (cards from the HIS API only)"
fi

echo "6/6 start"
systemctl daemon-reload
systemctl enable --now fpverify-edge.service
echo "done: journalctl -u fpverify-edge -f ; the page: http://127.0.0.1:8470/kiosk"
