#!/usr/bin/env python3
"""deploy/ against the dlwpt-serve it deploys. No image registry or cluster is reachable here,
so the Dockerfile and the Kubernetes manifests are checked for what can go stale: every flag
and DLWPT_SERVE_* variable they use exists (dlwpt-serve --help), the install component the
image copies holds the binary at the path its entrypoint names, its runtime stage installs a
package for every shared library the binary links, the ports agree, and a dlwpt-serve
started with the manifest's own arguments and environment answers the probe and metrics
paths. Also: non-root user, grace period covering the drain, Service and autoscaler aimed at
the Deployment.

usage: deploy_test.py BUILD_DIR REFERENCE_DIR SOURCE_DIR
"""
import os
import pathlib
import re
import select
import shlex
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

import yaml

BUILD, REFERENCES, SOURCE = (pathlib.Path(p) for p in sys.argv[1:4])
sys.argv[1:] = sys.argv[4:]
SERVE = BUILD / 'apps' / 'dlwpt-serve'
DOCKERFILE = SOURCE / 'deploy' / 'docker' / 'Dockerfile'
MANIFEST = SOURCE / 'deploy' / 'kubernetes' / 'dlwpt-serve.yaml'
# Linked by every C++ program: part of any Debian image.
BASE_PACKAGES = {'libc6', 'libstdc++6', 'libgcc-s1'}


def serve_flags():
    help_text = subprocess.run([str(SERVE), '--help'], capture_output=True, text=True, check=True).stdout
    return set(re.findall(r'--([a-z][a-z0-9-]+)', help_text))


def dockerfile_stages():
    """[(stage name, [instruction lines])], continuation lines joined."""
    text = re.sub(r'\\\n', ' ', DOCKERFILE.read_text())
    stages = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        if line.startswith('FROM '):
            stages.append((line.split()[-1], [line]))
        else:
            stages[-1][1].append(line)
    return stages


def exec_form(line):
    """The JSON array of an ENTRYPOINT or CMD line."""
    return yaml.safe_load(line.split(None, 1)[1])


def flags_in(arguments):
    return {argument[2:].split('=')[0] for argument in arguments if argument.startswith('--')}


def deployment_docs():
    return {doc['kind']: doc for doc in yaml.safe_load_all(MANIFEST.read_text())}


class DockerfileTest(unittest.TestCase):
    def test_stages_are_bookworm_and_the_runtime_user_is_not_root(self):
        stages = dockerfile_stages()
        self.assertEqual([name for name, _ in stages], ['build', 'runtime'])
        for _, lines in stages:
            self.assertRegex(lines[0], r'^FROM debian:bookworm(-slim)? AS ')
        users = [line.split()[1] for line in stages[-1][1] if line.startswith('USER ')]
        self.assertEqual(len(users), 1)
        self.assertNotIn(users[0], ('0', 'root'))

    def test_entrypoint_flags_exist_and_the_install_component_holds_the_binary(self):
        runtime = dockerfile_stages()[-1][1]
        entrypoint = exec_form(next(line for line in runtime if line.startswith('ENTRYPOINT ')))
        command = exec_form(next(line for line in runtime if line.startswith('CMD ')))
        self.assertEqual(flags_in(entrypoint + command) - serve_flags(), set())
        build = dockerfile_stages()[0][1]
        install = next(line for line in build if 'cmake --install' in line)
        component = re.search(r'--component (\S+)', install).group(1)
        prefix = re.search(r'-DCMAKE_INSTALL_PREFIX=(\S+)', ' '.join(build)).group(1)
        with tempfile.TemporaryDirectory() as folder:
            subprocess.run(['cmake', '--install', str(BUILD), '--component', component, '--prefix', folder],
                           check=True, capture_output=True, timeout=120)
            installed = pathlib.Path(folder) / pathlib.Path(entrypoint[0]).relative_to(prefix)
            self.assertTrue(installed.is_file(), f'{entrypoint[0]} is not what --component {component} installs')

    def test_runtime_stage_installs_every_library_the_binary_links(self):
        runtime = ' '.join(dockerfile_stages()[-1][1])
        listed = set(re.search(r'--no-install-recommends (.*?) &&', runtime).group(1).split())
        needed = re.findall(r'\(NEEDED\).*\[(.+)\]', subprocess.run(
            ['readelf', '-d', str(SERVE)], capture_output=True, text=True, check=True).stdout)
        missing = []
        for soname in needed:
            owners = subprocess.run(['dpkg', '-S', f'*/{soname}'], capture_output=True, text=True)
            if owners.returncode != 0:
                self.skipTest(f'dpkg cannot tell which package holds {soname} (not Debian?)')
            packages = {line.split(':')[0] for line in owners.stdout.splitlines()}
            if not packages & (listed | BASE_PACKAGES):
                missing.append(f'{soname} ({", ".join(sorted(packages))})')
        print(f'{len(needed)} linked libraries, all from the runtime stage\'s packages'
              if not missing else f'missing: {missing}')
        self.assertEqual(missing, [])


class KubernetesTest(unittest.TestCase):
    def test_flags_environment_ports_and_grace_period(self):
        docs = deployment_docs()
        deployment = docs['Deployment']
        pod = deployment['spec']['template']['spec']
        container = pod['containers'][0]
        flags = serve_flags()
        self.assertEqual(flags_in(container['args']) - flags, set())
        for variable in container.get('env', []):
            self.assertTrue(variable['name'].startswith('DLWPT_SERVE_'), variable['name'])
            flag = variable['name'][len('DLWPT_SERVE_'):].lower().replace('_', '-')
            self.assertIn(flag, flags, variable['name'])
        docker_port = exec_form(next(line for line in dockerfile_stages()[-1][1]
                                     if line.startswith('ENTRYPOINT ')))
        port = int(docker_port[docker_port.index('--port') + 1])
        self.assertEqual(container['ports'][0]['containerPort'], port)
        annotations = deployment['spec']['template']['metadata']['annotations']
        self.assertEqual(int(annotations['prometheus.io/port']), port)
        args = container['args']
        drain_s = int(args[args.index('--drain-timeout-ms') + 1]) / 1000
        pause_s = int(container['lifecycle']['preStop']['exec']['command'][-1])
        self.assertGreaterEqual(pod['terminationGracePeriodSeconds'], drain_s + pause_s + 5)
        self.assertEqual(pod['securityContext']['runAsUser'], 10001)
        self.assertEqual(docs['Service']['spec']['selector'], deployment['spec']['selector']['matchLabels'])
        self.assertEqual(docs['Service']['spec']['ports'][0]['targetPort'], container['ports'][0]['name'])
        self.assertEqual(docs['HorizontalPodAutoscaler']['spec']['scaleTargetRef']['name'],
                         deployment['metadata']['name'])
        mounts = {mount['mountPath'] for mount in container['volumeMounts']}
        for argument in args:
            if '=/' in argument:
                self.assertTrue(any(argument.split('=', 1)[1].startswith(m + '/') for m in mounts), argument)

    def test_the_manifests_server_answers_its_probes(self):
        container = deployment_docs()['Deployment']['spec']['template']['spec']['containers'][0]
        # The manifest's arguments and environment, with the reference archives for /models.
        archives = {'/models/classifier.pt': REFERENCES / 'luna.pt',
                    '/models/segmentation.pt': REFERENCES / 'unet_book.pt'}
        args = [argument for argument in container['args']]
        for mounted, local in archives.items():
            args = [argument.replace(mounted, str(local)) for argument in args]
        env = {**os.environ, **{v['name']: v['value'] for v in container['env']}}
        process = subprocess.Popen([str(SERVE), *args, '--port', '0'], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, env=env)
        try:
            output = b''
            deadline = time.monotonic() + 120
            while b'listening on' not in output and time.monotonic() < deadline and process.poll() is None:
                if select.select([process.stdout], [], [], 0.2)[0]:
                    output += os.read(process.stdout.fileno(), 4096)
            self.assertIn(b'listening on', output, process.stderr.read() if process.poll() is not None else '')
            url = output.decode().split('listening on ')[1].split()[0]
            paths = [container['readinessProbe']['httpGet']['path'], container['livenessProbe']['httpGet']['path'],
                     deployment_docs()['Deployment']['spec']['template']['metadata']['annotations']['prometheus.io/path']]
            for path in paths:
                with urllib.request.urlopen(url + path, timeout=10) as answer:
                    self.assertEqual(answer.status, 200, path)
            print(f'{shlex.join(["dlwpt-serve", *args])}: {", ".join(paths)} answer 200')
        finally:
            process.terminate()
            process.wait(timeout=60)
            process.stdout.close()
            process.stderr.close()


if __name__ == '__main__':
    unittest.main(verbosity=2)
