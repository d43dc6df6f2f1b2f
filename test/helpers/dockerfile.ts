/** A Dockerfile read into stages and instructions, enough to check its facts and replay its steps. */
export interface Instruction {
  /** Upper-case keyword: FROM, RUN, COPY, ... */
  readonly keyword: string;
  /** Everything after the keyword, continuation lines joined. */
  readonly args: string;
  /** The JSON array of an exec-form instruction (RUN ["a", "b"]), undefined in shell form. */
  readonly exec: string[] | undefined;
  /** --name=value options before the arguments (COPY --from=build, HEALTHCHECK --interval=10s). */
  readonly options: Readonly<Record<string, string>>;
  /** The arguments after the options. */
  readonly rest: string;
}

export interface Stage {
  readonly image: string;
  readonly name: string | undefined;
  readonly instructions: Instruction[];
}

export interface Dockerfile {
  /** ARGs declared before the first FROM, with their defaults. */
  readonly globalArgs: Readonly<Record<string, string>>;
  readonly stages: Stage[];
  /** Comment lines (without '#'), for checking that choices are explained. */
  readonly comments: string[];
}

export function parseDockerfile(text: string): Dockerfile {
  const comments: string[] = [];
  const logical: string[] = [];
  let pending = '';
  for (const line of text.split('\n')) {
    const trimmed = line.trim();
    if (trimmed.startsWith('#')) {
      comments.push(trimmed.slice(1).trim());
      continue;
    }
    if (trimmed === '' && pending === '') continue;
    if (trimmed.endsWith('\\')) {
      pending += `${trimmed.slice(0, -1)} `;
      continue;
    }
    logical.push((pending + trimmed).trim());
    pending = '';
  }
  if (pending !== '') logical.push(pending.trim());

  const globalArgs: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const line of logical) {
    const match = /^(\S+)\s*(.*)$/s.exec(line);
    if (!match) continue;
    const keyword = (match[1] as string).toUpperCase();
    const args = (match[2] as string).trim();
    const instruction = parseInstruction(keyword, args);
    if (keyword === 'FROM') {
      const from = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(instruction.rest);
      if (!from) throw new Error(`cannot parse FROM ${args}`);
      stages.push({ image: from[1] as string, name: from[2], instructions: [] });
    } else if (stages.length === 0) {
      if (keyword !== 'ARG') throw new Error(`${keyword} before the first FROM`);
      const [name, value = ''] = args.split('=', 2);
      globalArgs[name as string] = value;
    } else {
      (stages.at(-1) as Stage).instructions.push(instruction);
    }
  }
  return { globalArgs, stages, comments };
}

function parseInstruction(keyword: string, args: string): Instruction {
  const options: Record<string, string> = {};
  let rest = args;
  for (;;) {
    const option = /^--([a-z-]+)=(\S+)\s*/.exec(rest);
    if (!option) break;
    options[option[1] as string] = option[2] as string;
    rest = rest.slice(option[0].length);
  }
  // HEALTHCHECK's own command follows "CMD".
  const command = keyword === 'HEALTHCHECK' ? rest.replace(/^CMD\s+/, '') : rest;
  let exec: string[] | undefined;
  if (command.startsWith('[')) exec = JSON.parse(command) as string[];
  return { keyword, args, exec, options, rest };
}

/** The image a stage is built FROM, with ${ARG} defaults substituted. */
export function resolvedImage(file: Dockerfile, stage: Stage): string {
  return stage.image.replace(/\$\{(\w+)\}/g, (_, name: string) => file.globalArgs[name] ?? '');
}

export function instructionsOf(stage: Stage, keyword: string): Instruction[] {
  return stage.instructions.filter((instruction) => instruction.keyword === keyword);
}
