#!/bin/bash
# The project's test command: host set-up, guest images (built once, cached in ~/.cache/vbake),
# then unit tests (Surefire) and the integration tests that boot real guests (Failsafe).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
tests/setup-host.sh
(cd vm-images/agent && go vet ./... && go test -count=1 ./...)
mvn -B -q -DskipTests package
java -jar target/vbake.jar images build --arch aarch64,x86_64 --runtime docker,podman
mvn -B verify
# The same commands without saved guests (--no-resume): a boot each, powered off at the end.
VBAKE_RESUME=false mvn -B -o verify -Dtest=NoSuchTest -Dsurefire.failIfNoSpecifiedTests=false \
    -Dit.test='GuestIT#infoReportsTargetArch+statePersistsAcrossCommands,ImportExportIT#vimportedTreeVerifiesAndABrokenOneDoesNot'
tests/e2e.sh
