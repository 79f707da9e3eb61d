package org.vbake.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The host-rendered {@code docker images} against docker 26's CLI output for the same API answer. */
class DockerImagesTableTest {

    private static final long NOW = 1_800_000_000_000L;
    private static final String API = """
            [{"Id":"sha256:d0337b71a11db9c06a91678cac6d931b15feba444e71ff562061259575ab8af3","Created":1799996400,
              "Size":1941504,"RepoTags":["hello:1","registry.example:5000/team/hello:v2"],
              "RepoDigests":["registry.example:5000/team/hello@sha256:aa","other/only@sha256:bb"]},
             {"Id":"sha256:1111111111111111111111111111111111111111111111111111111111111111","Created":0,
              "Size":999950,"RepoTags":[],"RepoDigests":[]}]
            """;

    private static String render(String... args) throws Exception {
        DockerImagesTable.Options o = DockerImagesTable.Options.parse(List.of(args));
        return DockerImagesTable.render(API.getBytes(StandardCharsets.UTF_8), o, NOW);
    }

    @Test
    void defaultTableIsTheCliLayout() throws Exception {
        // Go tabwriter columns: widest cell + 3, at least 10; the last column is not padded.
        assertThat(render()).isEqualTo(""
                + "REPOSITORY                         TAG       IMAGE ID       CREATED             SIZE\n"
                + "hello                              1         d0337b71a11d   About an hour ago   1.94MB\n"
                + "registry.example:5000/team/hello   v2        d0337b71a11d   About an hour ago   1.94MB\n"
                + "other/only                         <none>    d0337b71a11d   About an hour ago   1.94MB\n"
                + "<none>                             <none>    111111111111   57 years ago        1e+03kB\n");
    }

    @Test
    void quietAndNoTruncGiveOneIdPerRow() throws Exception {
        assertThat(render("-q").lines()).containsExactly("d0337b71a11d", "d0337b71a11d", "d0337b71a11d",
                "111111111111");
        assertThat(render("-q", "--no-trunc").lines().findFirst().orElseThrow())
                .isEqualTo("sha256:d0337b71a11db9c06a91678cac6d931b15feba444e71ff562061259575ab8af3");
    }

    @Test
    void emptyStoreIsTheHeaderOnly() throws Exception {
        assertThat(DockerImagesTable.render("[]".getBytes(StandardCharsets.UTF_8),
                DockerImagesTable.Options.parse(List.of()), NOW))
                .isEqualTo("REPOSITORY   TAG       IMAGE ID   CREATED   SIZE\n");
    }

    @Test
    void otherOptionsGoToTheRealCli() {
        assertThat(DockerImagesTable.Options.parse(List.of("--format", "{{.ID}}"))).isNull();
        assertThat(DockerImagesTable.Options.parse(List.of("hello"))).isNull();
        assertThat(DockerImagesTable.Options.parse(List.of("-a")).apiPath()).isEqualTo("/images/json?all=1");
    }

    @Test
    void sizesAndAgesAsGoUnitsPrintThem() {
        assertThat(DockerImagesTable.size(0)).isEqualTo("0B");
        assertThat(DockerImagesTable.size(999)).isEqualTo("999B");
        assertThat(DockerImagesTable.size(4096)).isEqualTo("4.1kB");
        assertThat(DockerImagesTable.size(12_345_678)).isEqualTo("12.3MB");
        assertThat(DockerImagesTable.size(123_456_789)).isEqualTo("123MB");
        assertThat(DockerImagesTable.createdSince(NOW / 1000, NOW)).isEqualTo("Less than a second ago");
        assertThat(DockerImagesTable.createdSince(NOW / 1000 - 90, NOW)).isEqualTo("About a minute ago");
        assertThat(DockerImagesTable.createdSince(NOW / 1000 - 3 * 86400, NOW)).isEqualTo("3 days ago");
        assertThat(DockerImagesTable.createdSince(NOW / 1000 - 20 * 86400, NOW)).isEqualTo("2 weeks ago");
    }
}
