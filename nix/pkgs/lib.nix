# Helpers for the bundled package set: Debian package versions and a
# derivation builder that turns files of this machine's Debian packages into
# store paths whose ELF files point at store paths only (see builder.sh).
{ system }:
let
  # Debian's package database, parsed once: { "<deb package>" = "<version>"; }.
  # No regex meets a long string here (long strings overflow builtins.match's stack).
  dpkgStatus = builtins.readFile /var/lib/dpkg/status;
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
  debVersions = builtins.listToAttrs (map (f: { name = f.Package; value = f.Version; }) installed);

  # A Debian version as a store-name-safe string: epoch dropped, "~" and ":" replaced.
  storeSafe = v:
    let noEpoch = let m = builtins.match "[0-9]+:(.*)" v; in if m == null then v else builtins.head m;
    in builtins.replaceStrings [ "~" ":" ] [ "_" "_" ] noEpoch;
in
rec {
  /* The installed version of Debian package `deb`, store-name safe.
     Evaluation fails with a clear message when the package is not installed. */
  debVersion = deb:
    if debVersions ? ${deb} then storeSafe debVersions.${deb}
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
      builder = "/bin/busybox";
      args = [ "sh" "-e" ./builder.sh ];
      noPatch = if noPatch then "1" else "";
    } // env);

  /* A tiny package with one executable script bin/<prog>, run by `shell` (a package with bin/sh). */
  mkScript = { pname, version, prog ? pname, shell, text }:
    derivation {
      name = "${pname}-${version}";
      inherit pname version system shell text prog;
      builder = "/bin/busybox";
      args = [ "sh" "-c" ''
        set -e
        /bin/busybox mkdir -p "$out/bin"
        printf '#!%s/bin/sh\n%s\n' "$shell" "$text" > "$out/bin/$prog"
        /bin/busybox chmod 555 "$out/bin/$prog"
        :
      '' ];
    };
}
