# Generic builder for the bundled package set (run by busybox sh, see lib.nix).
#
# 1. Runs the package's $install snippet, which copies Debian files into $out.
# 2. Unless $noPatch is set, makes every dynamic ELF file in $out a Nix citizen:
#    each shared library it needs (as the host's loader resolves it) is taken
#    from the first of $libDeps (store paths) whose lib/ holds that soname, or
#    else copied into $out/lib; then every ELF file gets the rpath
#    "$out/lib:<used deps>/lib" and executables the interpreter of $glibc.
#    The store paths in the rpath are what Nix sees as references.
#
# The system's Debian tree (lib.nix) sets $loader (the interpreter's name),
# $listLoader (the loader that lists what an ELF file needs, run with --list)
# and $libraryPath (where that loader looks first; empty on the host). For
# aarch64-linux the builder, the loader and the programs run under qemu.
set -eu
# busybox sh runs its own applets (cp, find, awk, ...) first; patchelf comes from the host.
export PATH=/usr/bin:/bin
tmp=${TMPDIR:-/tmp}

mkdir -p "$out"
eval "$install"

is_elf() {
  [ "$(dd if="$1" bs=4 count=1 2>/dev/null | tail -c 3)" = "ELF" ] &&
    [ "$(dd if="$1" bs=1 count=1 2>/dev/null | od -An -tx1 | tr -d ' ')" = "7f" ]
}

if [ -z "${noPatch:-}" ]; then
  : > "$tmp/elfs"
  find "$out" -type f | sort | while IFS= read -r f; do
    if is_elf "$f" && patchelf --print-rpath "$f" >/dev/null 2>&1; then
      chmod u+w "$f"
      printf '%s\n' "$f" >> "$tmp/elfs"
    fi
  done

  # soname + host path of every library needed by any ELF file (transitively).
  : > "$tmp/needed"
  while IFS= read -r f; do
    "$listLoader" ${libraryPath:+--library-path "$libraryPath"} --list "$f" 2>/dev/null |
      awk -v f="$f" '$2 == "=>" && $3 == "not" { print "warning: " f " needs " $1 ", not found" > "/dev/stderr"; next }
                     $2 == "=>" && substr($3, 1, 1) == "/" { print $1, $3 }' >> "$tmp/needed" || true
  done < "$tmp/elfs"
  sort -u "$tmp/needed" > "$tmp/needed.sorted"

  : > "$tmp/used"
  while read -r soname path; do
    case "$soname" in ld-linux*|*/ld-linux*|linux-vdso*) continue ;; esac
    provider=""
    for d in $libDeps; do
      if [ -e "$d/lib/$soname" ]; then provider=$d; break; fi
    done
    if [ -n "$provider" ]; then
      printf '%s\n' "$provider" >> "$tmp/used"
    elif [ ! -e "$out/lib/$soname" ]; then
      mkdir -p "$out/lib"
      cp -L "$path" "$out/lib/$soname"
      chmod u+w "$out/lib/$soname"
      printf '%s\n' "$out/lib/$soname" >> "$tmp/elfs"
    fi
  done < "$tmp/needed.sorted"

  # rpath: own lib/ first, then the used dependencies in $libDeps order.
  rpath=""
  if ls "$out"/lib/*.so* >/dev/null 2>&1; then rpath="$out/lib"; fi
  for d in $libDeps; do
    if grep -qxF "$d" "$tmp/used"; then rpath="${rpath:+$rpath:}$d/lib"; fi
  done

  while IFS= read -r f; do
    if patchelf --print-interpreter "$f" >/dev/null 2>&1; then
      patchelf --set-interpreter "$glibc/lib/$loader" "$f"
    fi
    if [ -n "$rpath" ]; then
      patchelf --set-rpath "$rpath" "$f"
    else
      patchelf --remove-rpath "$f"
    fi
  done < "$tmp/elfs"
fi
:
