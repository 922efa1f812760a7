# A minimal merged-/usr root file system made in the volume mounted at /data, from the host's own
# programs and the libraries they load (root.integration.test.ts and the Python test_volumes.py
# boot sandboxes from it): a second or two, where a Debian bootstrap takes half a minute. With
# WITH_PYTHON=1 it holds the host's python3 and its standard library too (the seccomp probe).
set -e
R=/data
mkdir -p $R/usr/bin $R/usr/lib $R/usr/lib64 $R/etc $R/var
ln -s usr/bin $R/bin; ln -s usr/lib $R/lib; ln -s usr/lib64 $R/lib64
for b in bash cat cp chmod chown ls id touch mkdir rm env readlink head tail stat unshare sleep grep wc true; do cp -L "$(type -P $b)" $R/usr/bin/; done
ln -s bash $R/usr/bin/sh
LOADED="$R/usr/bin/*"
if [ -n "${WITH_PYTHON:-}" ]; then
  py=$(readlink -f /usr/bin/python3)
  cp -L "$py" "$R$py"; ln -s "$(basename "$py")" $R/usr/bin/python3
  cp -a "/usr/lib/$(basename "$py")" $R/usr/lib/
  LOADED="$LOADED $R/usr/lib/$(basename "$py")/lib-dynload/*.so"
fi
for lib in $(ldd $LOADED 2>/dev/null | awk '/=> \//{print $3} /^\t\//{print $1}' | sort -u); do mkdir -p "$R$(dirname "$lib")"; cp -L "$lib" "$R$lib"; done
echo 'ID=sbx-mini' > $R/etc/os-release
printf 'root:x:0:0::/root:/bin/bash\nuser:x:1000:1000::/home/sandbox:/bin/bash\n' > $R/etc/passwd
mkdir -m 1777 $R/var/scratch
echo from-image > $R/var/scratch/seed
chmod 666 $R/var/scratch/seed
