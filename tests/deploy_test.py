#!/usr/bin/env python3
"""deploy/ against the dlwpt-serve and ct-segment it deploys. No image registry or cluster is reachable here,
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
CT_SEGMENT = BUILD / 'apps' / 'ct-segment'
DOCKERFILE = SOURCE / 'deploy' / 'docker' / 'Dockerfile'
MANIFEST = SOURCE / 'deploy' / 'kubernetes' / 'dlwpt-serve.yaml'
JOB = SOURCE / 'deploy' / 'kubernetes' / 'ct-segment-job.yaml'
MERGE_JOB = SOURCE / 'deploy' / 'kubernetes' / 'ct-segment-merge-job.yaml'
# Linked by every C++ program: part of any Debian image.
BASE_PACKAGES = {'libc6', 'libstdc++6', 'libgcc-s1'}
# The sanitizers' runtimes, linked by a sanitizer build (tools/dev.sh sanitize) only: the image
# is built without them.
SANITIZER_RUNTIMES = ('libasan.', 'libubsan.', 'liblsan.', 'libtsan.')


def flags_of(program):
    help_text = subprocess.run([str(program), '--help'], capture_output=True, text=True, check=True).stdout
    return set(re.findall(r'--([a-z][a-z0-9-]+)', help_text))


def serve_flags():
    return flags_of(SERVE)


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


def image_programs(*paths):
    """Those of `paths` (in the image) that the Dockerfile's install components put there."""
    build = dockerfile_stages()[0][1]
    components = re.findall(r'cmake --install \S+ --component (\S+)', ' '.join(build))
    prefix = re.search(r'-DCMAKE_INSTALL_PREFIX=(\S+)', ' '.join(build)).group(1)
    with tempfile.TemporaryDirectory() as folder:
        for component in components:
            subprocess.run(['cmake', '--install', str(BUILD), '--component', component, '--prefix', folder],
                           check=True, capture_output=True, timeout=120)
        return [path for path in paths if (pathlib.Path(folder) / pathlib.Path(path).relative_to(prefix)).is_file()]


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
        self.assertEqual(image_programs(entrypoint[0]), [entrypoint[0]])

    def test_runtime_stage_installs_every_library_the_binaries_link(self):
        runtime = ' '.join(dockerfile_stages()[-1][1])
        listed = set(re.search(r'--no-install-recommends (.*?) &&', runtime).group(1).split())
        needed = sorted({soname for program in (SERVE, CT_SEGMENT) for soname in re.findall(
            r'\(NEEDED\).*\[(.+)\]', subprocess.run(['readelf', '-d', str(program)], capture_output=True,
                                                     text=True, check=True).stdout)})
        missing = []
        for soname in needed:
            if soname.startswith(SANITIZER_RUNTIMES):
                continue
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


def job_container(path):
    job = yaml.safe_load(path.read_text())
    return job, job['spec']['template']['spec'], job['spec']['template']['spec']['containers'][0]


def job_program(container):
    """The program a Job's container runs, and its full command line with the arguments."""
    command = container['command']
    if command[:2] == ['/bin/sh', '-c']:
        program = shlex.split(command[2])[0]
        return program, ['/bin/sh', '-c', command[2].replace(program, str(CT_SEGMENT)), *command[3:],
                         *container['args']]
    return command[0], [str(CT_SEGMENT), *command[1:], *container['args']]


class IndexedJobTest(unittest.TestCase):
    """deploy/kubernetes/ct-segment-job.yaml and its merge Job."""

    def test_the_job_is_indexed_with_as_many_shards_as_completions(self):
        job, pod, container = job_container(JOB)
        self.assertEqual(job['spec']['completionMode'], 'Indexed')
        env = {v['name']: v['value'] for v in container['env']}
        self.assertEqual(int(env['DLWPT_SHARD_COUNT']), job['spec']['completions'])
        self.assertEqual(pod['restartPolicy'], 'Never')
        self.assertEqual(pod['securityContext']['runAsUser'], 10001)
        args = container['args']
        self.assertEqual(int(args[args.index('--threads') + 1]), int(container['resources']['requests']['cpu']))

    def test_flags_programs_and_paths_exist(self):
        flags = flags_of(CT_SEGMENT)
        for path in (JOB, MERGE_JOB):
            _, pod, container = job_container(path)
            program, _ = job_program(container)
            self.assertEqual(image_programs(program), [program], f'{path.name}: {program} is not in the image')
            self.assertEqual(flags_in(container['args']) - flags, set(), path.name)
            mounts = {mount['mountPath'] for mount in container['volumeMounts']}
            claims = {volume['name'] for volume in pod['volumes']}
            self.assertEqual({mount['name'] for mount in container['volumeMounts']}, claims)
            for argument in container['args']:
                if argument.startswith('/'):
                    self.assertTrue(any(argument == m or argument.startswith(m + '/') for m in mounts),
                                    f'{path.name}: {argument} is on no volume')
        job_args = job_container(JOB)[2]['args']
        merge_args = job_container(MERGE_JOB)[2]['args']
        self.assertEqual(merge_args[merge_args.index('--merge') + 1], job_args[job_args.index('--output') + 1])

    def test_the_jobs_pods_do_every_scan_once_and_the_merge_finds_them(self):
        """Every index of the Job run here, one after the other, with the manifests' own commands
        and environment (the volumes mapped to folders), then the merge Job's command."""
        job, _, container = job_container(JOB)
        with tempfile.TemporaryDirectory() as folder:
            root = pathlib.Path(folder)
            (root / 'scans').mkdir()
            for i in range(3):
                subprocess.run([sys.executable, str(SOURCE / 'tools' / 'testing' / 'ct_phantom.py'),
                                str(root / 'scans' / f'scan{i}.mhd'), '--slices', '10', '--size', '64', '--seed',
                                str(i)], check=True, timeout=120)
            mapping = {'/models/segmentation.pt': str(REFERENCES / 'unet_book.pt'),
                       '/models/classifier.pt': str(REFERENCES / 'luna.pt'),
                       '/results': str(root / 'results'), '/scans': str(root / 'scans')}

            def local(command):
                """The pod's command on this machine: its volumes, and one thread of this machine's
                cores (fewer than the pod asks for, which ct-segment would refuse)."""
                for mounted, path in mapping.items():
                    command = [part.replace(mounted, path) for part in command]
                if '--threads' in command:
                    command[command.index('--threads') + 1] = '1'
                return command

            env = {**os.environ, **{v['name']: v['value'] for v in container['env']}}
            _, command = job_program(container)
            analysed = 0
            for index in range(job['spec']['completions']):
                pod = subprocess.run(local(command), env={**env, 'JOB_COMPLETION_INDEX': str(index)},
                                     capture_output=True, text=True, timeout=300)
                self.assertEqual(pod.returncode, 0, pod.stderr)
                analysed += pod.stderr.count(' -> ')
            self.assertEqual(analysed, 3)
            _, merge_command = job_program(job_container(MERGE_JOB)[2])
            merge = subprocess.run(local(merge_command), capture_output=True, text=True, timeout=120)
            print(merge.stdout)
            self.assertEqual(merge.returncode, 0, merge.stdout + merge.stderr)
            self.assertIn('3 scans: 3 done, 0 failed, 0 missing', merge.stdout)


if __name__ == '__main__':
    unittest.main(verbosity=2)
