# Helpers for the bundled package set: Debian package versions and a
# derivation builder that turns files of this machine's Debian packages into
# store paths whose ELF files point at store paths only (see builder.sh).
#
# Each system reads the files of one Debian tree (`debian`): x86_64-linux the
# host's own (root "/"), aarch64-linux the arm64 packages that
# scripts/setup-arm64.sh unpacks, whose programs run under qemu user emulation
# (the builder itself is that tree's static busybox).
{ system }:
let
  debianTrees = {
    x86_64-linux = {
      root = "";
      triplet = "x86_64-linux-gnu";
      debArch = "amd64";
      loader = "ld-linux-x86-64.so.2";
      listLoader = "/lib64/ld-linux-x86-64.so.2";
      libraryPath = "";
    };
    # Keep the path in step with scripts/setup-arm64.sh and libs/shared/src/nix/platforms.ts.
    aarch64-linux = rec {
      root = "/var/cache/nixery/debian-arm64/root";
      triplet = "aarch64-linux-gnu";
      debArch = "arm64";
      loader = "ld-linux-aarch64.so.1";
      listLoader = "${root}/lib/${loader}";
      libraryPath = "${root}/lib/${triplet}";
    };
  };
  debian =
    if !(debianTrees ? ${system}) then throw "bundled package set: no Debian tree for system '${system}'"
    else if debianTrees.${system}.root != "" && !builtins.pathExists (debianTrees.${system}.root + "/var/lib/dpkg/status")
    then throw "bundled package set: the Debian tree for ${system} is missing (${debianTrees.${system}.root}); run scripts/setup-arm64.sh (npm start with NIXERY_PLATFORMS naming it runs it)"
    else debianTrees.${system};

  # A Debian package database, parsed once: { "<deb package>" = "<version>"; }.
  # No regex meets a long string here (long strings overflow builtins.match's stack).
  versionsIn = statusFile:
    let
      dpkgStatus = builtins.readFile statusFile;
      stanzas = builtins.filter builtins.isString (builtins.split "\n\n" dpkgStatus);
      wantedFields = [ "Package" "Version" "Status" ];
      fieldOf = line: name:
        let prefix = "${name}: "; n = builtins.stringLength prefix;
        in if builtins.substring 0 n line == prefix
          then { inherit name; value = builtins.substring n (builtins.stringLength line - n) line; }
          else null;
      fieldsOf = stanza:
        let lines = builtins.filter builtins.isString (builtins.split "\n" stanza);
        in builtins.listToAttrs (builtins.filter (f: f != null)
          (builtins.concatMap (l: map (fieldOf l) wantedFields) lines));
      installed = builtins.filter
        (f: f ? Package && f ? Version && f ? Status && builtins.match "[a-z]+ [a-z]+ installed" f.Status != null)
        (map fieldsOf stanzas);
    in builtins.listToAttrs (map (f: { name = f.Package; value = f.Version; }) installed);
  hostVersions = versionsIn /var/lib/dpkg/status;
  debVersions = if debian.root == "" then hostVersions else versionsIn (debian.root + "/var/lib/dpkg/status");

  # A Debian version as a store-name-safe string: epoch dropped, "~" and ":" replaced.
  storeSafe = v:
    let noEpoch = let m = builtins.match "[0-9]+:(.*)" v; in if m == null then v else builtins.head m;
    in builtins.replaceStrings [ "~" ":" ] [ "_" "_" ] noEpoch;
in
rec {
  /* The Debian tree of `system`: root (a prefix for absolute paths, "" on the
     host), triplet (multiarch directory), debArch, loader (the interpreter's
     name), listLoader and libraryPath (how builder.sh lists libraries). */
  inherit debian;

  /* The static busybox of the system's tree: every derivation's builder. */
  busybox = "${debian.root}/bin/busybox";

  /* The installed version of Debian package `deb` in the system's tree, store-name safe.
     Evaluation fails with a clear message when the package is not installed. */
  debVersion = deb:
    if debVersions ? ${deb} then storeSafe debVersions.${deb}
    else throw "bundled package set: Debian package '${deb}' is not installed for ${system} (see scripts/apt-packages.txt, scripts/debs-arm64.txt)";

  /* The version of `deb` on the host (arch-independent data the host provides for every system). */
  hostDebVersion = deb:
    if hostVersions ? ${deb} then storeSafe hostVersions.${deb}
    else throw "bundled package set: Debian package '${deb}' is not installed (see scripts/apt-packages.txt)";

  /* A package built from host files.
     pname:    package name (store name is "<pname>-<version>")
     deb:      Debian package whose version names it (default pname)
     install:  shell snippet that fills $out (runs under busybox sh with PATH=/usr/bin:/bin)
     libDeps:  library packages searched, in order, for the shared libraries ELF files need
     noPatch:  true to leave ELF files as they are (glibc itself)
     env:      extra environment for the builder (derivation inputs go here) */
  mkDebPackage = { pname, deb ? pname, version ? debVersion deb, install, libDeps ? [ ], noPatch ? false, env ? { } }:
    derivation ({
      name = "${pname}-${version}";
      inherit pname version system install libDeps;
      inherit (debian) loader listLoader libraryPath;
      builder = busybox;
      args = [ "sh" "-e" ./builder.sh ];
      noPatch = if noPatch then "1" else "";
    } // env);

  /* A tiny package with one executable script bin/<prog>, run by `shell` (a package with bin/sh). */
  mkScript = { pname, version, prog ? pname, shell, text }:
    derivation {
      name = "${pname}-${version}";
      inherit pname version system shell text prog;
      builder = busybox;
      args = [ "sh" "-c" ''
        set -e
        ${busybox} mkdir -p "$out/bin"
        printf '#!%s/bin/sh\n%s\n' "$shell" "$text" > "$out/bin/$prog"
        ${busybox} chmod 555 "$out/bin/$prog"
        :
      '' ];
    };
}
