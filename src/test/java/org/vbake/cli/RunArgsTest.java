package org.vbake.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;

class RunArgsTest {

    @Test
    void ttyInteractiveAndDetachFromClustersAndLongForms() {
        assertThat(RunArgs.parse(List.of("-it", "img", "sh"))).extracting(RunArgs::tty, RunArgs::interactive,
                RunArgs::detach).containsExactly(true, true, false);
        assertThat(RunArgs.parse(List.of("--tty", "--detach", "img")).detach()).isTrue();
        assertThat(RunArgs.parse(List.of("--tty=false", "img")).tty()).isFalse();
    }

    @Test
    void flagsAfterTheImageBelongToTheContainersCommand() {
        RunArgs r = RunArgs.parse(List.of("--name", "x", "img", "ls", "-t", "-v", "/a:/b"));
        assertThat(r.tty()).isFalse();
        assertThat(r.volumes()).isEmpty();
    }

    @Test
    void valuesOfOptionsAreSkippedNotMistakenForTheImage() {
        // "-e" takes "T=1"; "-w" takes "/x"; the image is "img" and -t after it is not ours.
        RunArgs r = RunArgs.parse(List.of("-e", "T=1", "-w", "/x", "--rm", "-i", "img", "-t"));
        assertThat(r.tty()).isFalse();
        assertThat(r.interactive()).isTrue();
    }

    @Test
    void hostPathVolumesAreFoundInEveryFormNamedVolumesAreNot() {
        RunArgs r = RunArgs.parse(List.of("-v", "/srv/data:/data", "--volume=./rel:/r:ro", "-vnamed:/n",
                "--volume", "/abs:/abs:rw,z", "-v/in:/line", "img"));
        assertThat(r.volumes()).extracting(RunArgs.HostVolume::index).containsExactly(1, 2, 5, 6);
        RunArgs.HostVolume first = r.volumes().get(0);
        assertThat(first.host()).isEqualTo(Path.of("/srv/data"));
        assertThat(first.rewritten("/g/0")).isEqualTo("/g/0:/data");
        assertThat(r.volumes().get(1).readOnly()).isTrue();
        assertThat(r.volumes().get(1).rewritten("/g/1")).isEqualTo("--volume=/g/1:/r:ro");
        assertThat(r.volumes().get(1).host()).isEqualTo(Path.of("rel").toAbsolutePath());
        assertThat(r.volumes().get(2).readOnly()).isFalse();
        assertThat(r.volumes().get(3).rewritten("/g/3")).isEqualTo("-v/g/3:/line");
    }

    @Test
    void publishedPortsAreForwardedToTheGuestPortTheEnginePublishes() throws Exception {
        List<String> command = List.of("run", "-d", "-p", "8080:80", "--publish=127.0.0.1:8443:443/tcp", "-p5353:53/udp",
                "--name", "web", "img", "-p", "1:2");
        RunArgs r = RunArgs.parse(command.subList(1, command.size()));
        assertThat(r.publishes()).extracting(RunArgs.Publish::value)
                .containsExactly("8080:80", "127.0.0.1:8443:443/tcp", "5353:53/udp");
        // The engine publishes the host port in the guest; QEMU forwards the host's port to it.
        assertThat(PublishedPorts.parse(r)).containsExactly(new PublishedPorts.Port("tcp", 8080, 8080),
                new PublishedPorts.Port("tcp", 8443, 8443), new PublishedPorts.Port("udp", 5353, 5353));
        // The engine gets the ports without the host's address: the guest listens on all of its own.
        assertThat(PublishedPorts.rewrite(command, r)).containsExactly("run", "-d", "-p", "8080:80",
                "--publish=8443:443/tcp", "-p5353:53/udp", "--name", "web", "img", "-p", "1:2");
        // On the guest's own network the container listens on its port in the guest.
        RunArgs host = RunArgs.parse(List.of("--network=host", "-p", "8080:80", "img"));
        assertThat(PublishedPorts.parse(host)).containsExactly(new PublishedPorts.Port("tcp", 8080, 80));
        assertThat(RunArgs.parse(List.of("--network", "custom", "-p", "1:2", "img")).network()).isEqualTo("custom");
    }

    @Test
    void unsupportedPublishFormsAreBadInput() {
        for (String bad : List.of("80", "8000-8010:80-90", "10.0.0.1:80:80", "99999:80")) {
            RunArgs r = RunArgs.parse(List.of("-p", bad, "img"));
            org.assertj.core.api.Assertions.assertThatThrownBy(() -> PublishedPorts.parse(r))
                    .isInstanceOf(org.vbake.api.BadInputException.class).hasMessageContaining(bad);
        }
    }
}
