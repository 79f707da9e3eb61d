package org.vbake.image.registry;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;
import org.vbake.api.BadInputException;
import org.vbake.image.Digest;

class ImageRefTest {

    private static final String HEX = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    @ParameterizedTest
    @CsvSource(delimiter = '|', nullValues = "-", textBlock = """
            alpine                        | docker.io      | library/alpine | latest | docker.io/library/alpine      | registry-1.docker.io
            alpine:3.20                   | docker.io      | library/alpine | 3.20   | docker.io/library/alpine      | registry-1.docker.io
            foo/bar:1                     | docker.io      | foo/bar        | 1      | docker.io/foo/bar             | registry-1.docker.io
            docker.io/alpine              | docker.io      | library/alpine | latest | docker.io/library/alpine      | registry-1.docker.io
            index.docker.io/foo/bar       | docker.io      | foo/bar        | latest | docker.io/foo/bar             | registry-1.docker.io
            quay.io/x/y:tag               | quay.io        | x/y            | tag    | quay.io/x/y                   | quay.io
            localhost/img                 | localhost      | img            | latest | localhost/img                 | localhost
            localhost:5000/a/b/c:v_1.2-rc | localhost:5000 | a/b/c          | v_1.2-rc | localhost:5000/a/b/c        | localhost:5000
            127.0.0.1:5000/a/b            | 127.0.0.1:5000 | a/b            | latest | 127.0.0.1:5000/a/b            | 127.0.0.1:5000
            [::1]:5000/a                  | [::1]:5000     | a              | latest | [::1]:5000/a                  | [::1]:5000
            ghcr.io/a-b/c.d__e:x          | ghcr.io        | a-b/c.d__e     | x      | ghcr.io/a-b/c.d__e            | ghcr.io
            """)
    void normalisesLikeDocker(String text, String registry, String repository, String tag, String name, String apiHost)
            throws BadInputException {
        ImageRef ref = ImageRef.parse(text);

        assertThat(ref.registry()).isEqualTo(registry);
        assertThat(ref.repository()).isEqualTo(repository);
        assertThat(ref.tag()).isEqualTo(tag);
        assertThat(ref.digest()).isNull();
        assertThat(ref.name()).isEqualTo(name);
        assertThat(ref.apiHost()).isEqualTo(apiHost);
        assertThat(ref.toString()).isEqualTo(name + ":" + tag);
        assertThat(ref.reference()).isEqualTo(tag);
    }

    @Test
    void digestOnlyHasNoTag() throws BadInputException {
        ImageRef ref = ImageRef.parse("127.0.0.1:5000/a/b@sha256:" + HEX);

        assertThat(ref.tag()).isNull();
        assertThat(ref.digest()).isEqualTo(new Digest(HEX));
        assertThat(ref.reference()).isEqualTo("sha256:" + HEX);
        assertThat(ref.toString()).isEqualTo("127.0.0.1:5000/a/b@sha256:" + HEX);
    }

    @Test
    void tagAndDigestKeepBothAndTheDigestIsWhatIsPulled() throws BadInputException {
        ImageRef ref = ImageRef.parse("quay.io/x/y:tag@sha256:" + HEX);

        assertThat(ref.tag()).isEqualTo("tag");
        assertThat(ref.digest()).isEqualTo(new Digest(HEX));
        assertThat(ref.reference()).isEqualTo("sha256:" + HEX);
        assertThat(ref.toString()).isEqualTo("quay.io/x/y:tag@sha256:" + HEX);
        assertThat(ImageRef.parse("alpine@sha256:" + HEX).name()).isEqualTo("docker.io/library/alpine");
    }

    @Test
    void withDigestPinsAndEqualityFollowsTheNormalisedForm() throws BadInputException {
        ImageRef ref = ImageRef.parse("alpine:3.20");

        assertThat(ref.withDigest(new Digest(HEX))).isEqualTo(ImageRef.parse("docker.io/library/alpine:3.20@sha256:" + HEX));
        assertThat(ImageRef.parse("alpine")).isEqualTo(ImageRef.parse("docker.io/library/alpine:latest"))
                .hasSameHashCodeAs(ImageRef.parse("index.docker.io/library/alpine"));
    }

    @ParameterizedTest
    @ValueSource(strings = {"", "Alpine", "foo/Bar", "quay.io/x/Y", "alpine:", "alpine:-x", "alpine:a+b", ":tag",
            "foo//bar", "foo/bar/", "/foo", "foo_/bar", "alpine@sha256:abc", "alpine@sha512:" + HEX,
            "alpine@sha256:" + HEX + "x", "a b", "bad_host.io:x/y", HEX})
    void rejectsInvalidReferencesNamingThem(String text) {
        assertThatThrownBy(() -> ImageRef.parse(text))
                .isInstanceOf(BadInputException.class)
                .hasMessageStartingWith("invalid image reference '" + text + "': ");
    }

    @Test
    void rejectsOverlongTagsAndNames() {
        assertThatThrownBy(() -> ImageRef.parse("alpine:" + "t".repeat(129))).isInstanceOf(BadInputException.class);
        assertThatThrownBy(() -> ImageRef.parse("quay.io/" + "a".repeat(250))).isInstanceOf(BadInputException.class)
                .hasMessageContaining("longer than 255");
    }

    @Test
    void explainsUppercase() {
        assertThatThrownBy(() -> ImageRef.parse("foo/Bar")).hasMessageContaining("must be lowercase");
    }
}
