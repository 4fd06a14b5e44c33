#!/bin/sh
# Convert an image into a boot image and run it lazily. The store directory is served over HTTP;
# every container on the node shares /var/lib/bootfs/cache, so each chunk is fetched once per node.
set -eu
bootfs convert oci:./app-layout:1.0 oci-archive:app-boot.tar \
  --store /srv/bootfs-store --image-store http://store.example:8080/ \
  --base oci:./node-base:20
bootfs serve --store /srv/bootfs-store --http :8080 &

podman load -i app-boot.tar          # or: docker load -i app-boot.tar
podman run --rm \
  --device /dev/fuse --cap-add SYS_ADMIN \
  -v bootfs-cache:/var/lib/bootfs/cache \
  localhost/app-boot:latest
# docker needs one more setting: --security-opt apparmor=unconfined (its default AppArmor profile
# forbids mount). Arguments after the image replace the image's CMD, as with the original image.
